package history

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine/run"
)

// factsData is a facts task's data with two hardware NICs (one a 100G port of an
// oversubscribed card, one a VF) and a bond, which is left out.
func factsData(extra map[string]cty.Value) cty.Value {
	nics := map[string]cty.Value{
		"ens2f0": cty.ObjectVal(map[string]cty.Value{
			"kind": cty.StringVal("ether"), "virtual": cty.False, "driver": cty.StringVal("mlx5_core"),
			"driver_version": cty.StringVal("5.8-1.0.1"), "firmware_version": cty.StringVal("16.35.2000 (MT_0000000012)"),
			"bus_info": cty.StringVal("0000:5e:00.0"), "master": cty.StringVal("bond0"), "mtu": cty.NumberIntVal(9100),
			"speed_mbps": cty.NumberIntVal(100000), "sriov_capable": cty.True, "sriov_total_vfs": cty.NumberIntVal(8),
			"sriov_num_vfs": cty.NumberIntVal(4), "sriov_pf_address": cty.StringVal(""), "pcie_oversubscribed": cty.True,
			"pcie": cty.ObjectVal(map[string]cty.Value{"width": cty.NumberIntVal(16), "max_width": cty.NumberIntVal(16),
				"speed_gts": cty.NumberFloatVal(8), "generation": cty.NumberIntVal(3), "bandwidth_gbps": cty.NumberFloatVal(126),
				"degraded": cty.False}),
		}),
		"ens2f0v0": cty.ObjectVal(map[string]cty.Value{
			"kind": cty.StringVal("ether"), "virtual": cty.False, "driver": cty.StringVal("mlx5_core"),
			"bus_info": cty.StringVal("0000:5e:00.2"), "mtu": cty.NullVal(cty.Number), "speed_mbps": cty.NullVal(cty.Number),
			"sriov_capable": cty.False, "sriov_total_vfs": cty.NullVal(cty.Number), "sriov_pf_address": cty.StringVal("0000:5e:00.0"),
			"pcie": cty.NullVal(cty.DynamicPseudoType),
		}),
		"bond0": cty.ObjectVal(map[string]cty.Value{"kind": cty.StringVal("bond"), "virtual": cty.True, "driver": cty.StringVal("bonding")}),
	}
	for k, v := range extra {
		nics[k] = v
	}
	return cty.ObjectVal(map[string]cty.Value{"nics": cty.ObjectVal(nics), "pcie_devices": cty.EmptyTupleVal})
}

func TestNICsOf(t *testing.T) {
	i := func(n int) *int { return &n }
	f := func(v float64) *float64 { return &v }
	port := NIC{Name: "ens2f0", Kind: "ether", Driver: "mlx5_core", DriverVersion: "5.8-1.0.1", FirmwareVersion: "16.35.2000 (MT_0000000012)",
		BusInfo: "0000:5e:00.0", Master: "bond0", MTU: i(9100), SpeedMbps: i(100000), SRIOVCapable: true, SRIOVTotal: i(8), SRIOVNum: i(4),
		PCIe: &NICPCIe{Width: 16, MaxWidth: i(16), SpeedGTs: 8, Generation: i(3), BandwidthGbps: f(126), Oversubscribed: true}}
	vf := NIC{Name: "ens2f0v0", Kind: "ether", Driver: "mlx5_core", BusInfo: "0000:5e:00.2", SRIOVPF: "0000:5e:00.0"}
	long := strings.Repeat("é", 200) // 400 bytes: cut to 128 on a character boundary
	tests := []struct {
		name string
		data cty.Value
		want []NIC
	}{
		{"hardware NICs, sorted; the bond left out", factsData(nil), []NIC{port, vf}},
		{"no data", cty.NilVal, nil},
		{"null", cty.NullVal(cty.DynamicPseudoType), nil},
		{"no nics attribute", cty.ObjectVal(map[string]cty.Value{"os": cty.StringVal("x")}), nil},
		{"nics not an object", cty.ObjectVal(map[string]cty.Value{"nics": cty.StringVal("eth0")}), nil},
		{"a sensitive value anywhere: nothing", factsData(map[string]cty.Value{"x": cty.ObjectVal(map[string]cty.Value{
			"driver": cty.StringVal("s").Mark("sensitive")})}), nil},
		{"unknown: nothing", factsData(map[string]cty.Value{"x": cty.UnknownVal(cty.DynamicPseudoType)}), nil},
		{"wrong types and a long driver are bounded, not trusted",
			cty.ObjectVal(map[string]cty.Value{"nics": cty.ObjectVal(map[string]cty.Value{"eth0": cty.ObjectVal(map[string]cty.Value{
				"driver": cty.StringVal(long), "mtu": cty.StringVal("9000"), "speed_mbps": cty.NumberFloatVal(2.5),
				"sriov_total_vfs": cty.NumberIntVal(1 << 40), "pcie": cty.ObjectVal(map[string]cty.Value{"width": cty.StringVal("x16")}),
				"sriov_capable": cty.StringVal("yes"), "virtual": cty.StringVal("no")})})}),
			[]NIC{{Name: "eth0", Driver: strings.Repeat("é", 64)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NICsOf(tt.data); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("NICsOf =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	many := map[string]cty.Value{}
	for n := 0; n < MaxNICs+10; n++ {
		many[strings.Repeat("n", 1+n/26)+string(rune('a'+n%26))] = cty.ObjectVal(map[string]cty.Value{"driver": cty.StringVal("d")})
	}
	if got := NICsOf(cty.ObjectVal(map[string]cty.Value{"nics": cty.ObjectVal(many)})); len(got) != MaxNICs {
		t.Errorf("%d NICs kept, want %d", len(got), MaxNICs)
	}
}

// TestNotesRoundTrip: a result's warnings and a facts task's NICs are written and read back,
// on both backends; NoteTasks finds exactly the tasks with either, and the NICs of another
// module's result are not kept.
func TestNotesRoundTrip(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			s := be.open(t)
			ctx := context.Background()
			rec, err := Begin(ctx, s, Run{StartedAt: time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC), Runbook: "/srv/bigip", Mode: ModeCheck},
				func(err error) { t.Error(err) })
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []string{"kvm1", "kvm2"} {
				rec.HostStarted(h)
				rec.TaskDone(run.Result{Host: h, Play: "p", Task: "motd", Module: "copy", Status: run.OK})
				rec.TaskDone(run.Result{Host: h, Play: "p", Task: "NIC inventory", Module: "facts", Status: run.OK, Data: factsData(nil)})
				rec.TaskDone(run.Result{Host: h, Play: "p", Task: "lookalike", Module: "command", Status: run.OK, Data: factsData(nil)})
				if h == "kvm1" {
					rec.TaskDone(run.Result{Host: h, Play: "p", Task: "PCIe", Module: "assert", Status: run.OK,
						Warnings: []string{"card 0000:5e:00: 200 Gbps on a 126 Gbps link", "second"}})
				}
				rec.HostDone(h, run.Stats{OK: 3})
			}
			if err := rec.Finish(&run.Recap{}); err != nil {
				t.Fatal(err)
			}
			tasks, err := s.NoteTasks(ctx, []int64{rec.RunID()}, []string{"kvm1"})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, x := range tasks {
				names = append(names, x.Host+":"+x.Task)
			}
			if !reflect.DeepEqual(names, []string{"kvm1:NIC inventory", "kvm1:PCIe"}) {
				t.Fatalf("NoteTasks = %v", names)
			}
			if !reflect.DeepEqual(tasks[0].NICs, NICsOf(factsData(nil))) || tasks[0].Warnings != nil {
				t.Errorf("NIC inventory read back as %+v, warnings %v", tasks[0].NICs, tasks[0].Warnings)
			}
			if !reflect.DeepEqual(tasks[1].Warnings, []string{"card 0000:5e:00: 200 Gbps on a 126 Gbps link", "second"}) || tasks[1].NICs != nil {
				t.Errorf("PCIe read back with warnings %q, NICs %v", tasks[1].Warnings, tasks[1].NICs)
			}
			if all, err := s.NoteTasks(ctx, []int64{rec.RunID()}, nil); err != nil || len(all) != 3 {
				t.Errorf("NoteTasks for every host: %d tasks, %v", len(all), err)
			}
		})
	}
}
