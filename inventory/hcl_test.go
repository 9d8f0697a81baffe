package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestHCLInventory(t *testing.T) {
	inv, diags := Load(context.Background(), "testdata/hcl/lab.hcl")
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	var names []string
	for _, h := range inv.Hosts() {
		names = append(names, h.Name)
	}
	wantNames := []string{"kvm01", "kvm02", "kvm03", "kvm04", "edge-a", "edge-b", "kvm08", "kvm10", "kvm12"}
	if !reflect.DeepEqual(names, wantNames) {
		t.Errorf("hosts = %v, want %v", names, wantNames)
	}
	kvm01, _ := inv.Host("kvm01")
	want := map[string]any{
		"ansible_host":                 "127.0.0.1",
		"ansible_port":                 int64(2201),
		"ansible_user":                 "root",
		"ansible_ssh_private_key_file": "~/.ssh/id",
		"ansible_ssh_common_args":      "-o ProxyJump=bastion",
		"data_nics":                    []any{"ens1f0", "ens1f1"},
		"ratio":                        1.5,
		"nested":                       map[string]any{"a": int64(1), "b": []any{true, nil}},
		"bond_mtu":                     int64(9100),
		"ntp":                          "pool",
		"rack":                         "a",
	}
	if !reflect.DeepEqual(kvm01.Vars, want) {
		t.Errorf("kvm01 vars = %#v", kvm01.Vars)
	}
	if c := kvm01.Connection(); c != (Connection{Address: "127.0.0.1", Port: 2201, User: "root", IdentityFile: "~/.ssh/id", ProxyJump: "bastion"}) {
		t.Errorf("kvm01 connection = %+v", c)
	}
	// host vars beat group vars, edge (deeper, priority 5) beats kvm
	kvm03, _ := inv.Host("kvm03")
	edgeA, _ := inv.Host("edge-a")
	edgeB, _ := inv.Host("edge-b")
	if kvm03.Vars["rack"] != "b" || edgeA.Vars["role"] != "edge" || edgeA.Vars["rack"] != "a" || edgeB.Vars["rack"] != "none" {
		t.Errorf("precedence: kvm03 %v, edge-a %v, edge-b %v", kvm03.Vars, edgeA.Vars, edgeB.Vars)
	}
	if _, ok := edgeA.Vars["ansible_group_priority"]; ok {
		t.Error("ansible_group_priority is the group's priority, not a variable")
	}
	if !reflect.DeepEqual(edgeA.Groups, []string{"all", "kvm", "edge"}) || !reflect.DeepEqual(edgeB.Groups, []string{"all", "ungrouped"}) {
		t.Errorf("groups: edge-a %v, edge-b %v", edgeA.Groups, edgeB.Groups)
	}
	if c := edgeB.Connection(); c.Address != "" || c.Port != 0 {
		t.Errorf("a host without settings has no address of its own (ssh_config or its name decide): %+v", c)
	}
	g, ok := inv.Group("kvm")
	if !ok || !reflect.DeepEqual(g.Children, []string{"edge"}) || len(g.Hosts) != 7 || g.Vars["bond_mtu"] != int64(9100) {
		t.Errorf("group kvm = %+v", g)
	}
	var groupNames []string
	for _, g := range inv.Groups() {
		groupNames = append(groupNames, g.Name)
	}
	if !reflect.DeepEqual(groupNames, []string{"all", "edge", "kvm", "ungrouped"}) {
		t.Errorf("groups = %v", groupNames)
	}
	list, err := inv.ListJSON()
	if err != nil {
		t.Fatal(err)
	}
	var parsed map[string]any
	if err := json.Unmarshal(list, &parsed); err != nil {
		t.Fatalf("ListJSON is not JSON: %v", err)
	}
	if got := parsed["all"]; !reflect.DeepEqual(got, map[string]any{"children": []any{"ungrouped", "kvm"}}) {
		t.Errorf("all = %v", got)
	}
	var graph bytes.Buffer
	if err := inv.Graph(&graph, false); err != nil {
		t.Fatal(err)
	}
	wantGraph := `@all:
  |--@ungrouped:
  |  |--edge-b
  |--@kvm:
  |  |--@edge:
  |  |  |--edge-a
  |  |--kvm01
  |  |--kvm02
  |  |--kvm03
  |  |--kvm04
  |  |--kvm08
  |  |--kvm10
  |  |--kvm12
`
	if graph.String() != wantGraph {
		t.Errorf("graph:\n%s", graph.String())
	}
}

func TestHCLSameAsINI(t *testing.T) {
	hclSrc := `
host "a1" {
  port = 2222
  vars = { x = 1 }
}
group "g" {
  hosts = ["a1", "a2"]
  vars  = { y = "g" }
}
group "p" {
  children = ["g"]
}
`
	iniSrc := `
[g]
a1 ansible_port=2222 x=1
a2
[g:vars]
y=g
[p:children]
g
`
	a, diags := Parse("x.hcl", []byte(hclSrc))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	b, diags := Parse("x.ini", []byte(iniSrc))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	la, _ := a.ListJSON()
	lb, _ := b.ListJSON()
	if !bytes.Equal(la, lb) {
		t.Errorf("HCL and INI differ:\n%s\n%s", la, lb)
	}
}

func TestConnection(t *testing.T) {
	tests := []struct {
		vars map[string]any
		want Connection
	}{
		{map[string]any{}, Connection{}},
		{map[string]any{"ansible_host": "10.0.0.1", "ansible_port": "2222", "ansible_user": "u", "ansible_password": "pw"},
			Connection{Address: "10.0.0.1", Port: 2222, User: "u", Password: "pw"}},
		// Ansible reads the older names last, so they win
		{map[string]any{"ansible_host": "a", "ansible_ssh_host": "b", "ansible_user": "u1", "ansible_ssh_user": "u2", "ansible_ssh_port": int64(22), "ansible_ssh_pass": "p"},
			Connection{Address: "b", Port: 22, User: "u2", Password: "p"}},
		{map[string]any{"ansible_private_key_file": "k1", "ansible_ssh_private_key_file": "k2"}, Connection{IdentityFile: "k2"}},
		{map[string]any{"ansible_port": int64(70000)}, Connection{}},
		{map[string]any{"ansible_host": nil}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": "-o ProxyJump=jump@bastion:2222"}, Connection{ProxyJump: "jump@bastion:2222"}},
		{map[string]any{"ansible_ssh_common_args": "-J bastion -o StrictHostKeyChecking=no"}, Connection{ProxyJump: "bastion"}},
		{map[string]any{"ansible_ssh_common_args": "-oProxyJump=b1,b2"}, Connection{ProxyJump: "b1,b2"}},
		{map[string]any{"ansible_ssh_common_args": `-o "ProxyJump b3"`}, Connection{ProxyJump: "b3"}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -W %h:%p -q admin@bastion -p 2200"`}, Connection{ProxyJump: "admin@bastion:2200"}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="nc -X 5 -x proxy:1080 %h %p"`}, Connection{}},
		// a ProxyCommand is a jump host only when dropping the rest of it changes nothing:
		// otherwise it is kept as written (Connection{}: no jump host) and the transport runs it
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -p2222 -W %h:%p bastion"`}, Connection{ProxyJump: "bastion:2222"}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="/usr/bin/ssh -qTN -oPort=2201 -W%h:%p -lops bastion -o ServerAliveInterval=30 -o ControlMaster=no"`}, Connection{ProxyJump: "ops@bastion:2201"}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -l first -W %h:%p second@bastion"`}, Connection{ProxyJump: "first@bastion"}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -W %h:%p -p 2222 fd00::1"`}, Connection{ProxyJump: "[fd00::1]:2222"}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -J outer -W %h:%p inner"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -W 10.9.9.9:22 bastion"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -i /k/bastion -W %h:%p bastion"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -o UserKnownHostsFile=/k/kh -W %h:%p bastion"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -F other -W %h:%p bastion"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -o StrictHostKeyChecking=no -W %h:%p bastion"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -A -W %h:%p bastion"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -W %h:%p %r@bastion"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -W %h:%p b1,b2"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -W %h:%p ssh://bastion:2222"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -W %h:%p bastion uptime"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -W %h:%p $BASTION"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -W %h:%p bastion; touch /tmp/x"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="sshpass -p pw ssh -W %h:%p bastion"`}, Connection{}},
		{map[string]any{"ansible_ssh_common_args": `-o ProxyCommand="ssh -p nope -W %h:%p bastion"`}, Connection{}},
		// ProxyJump=none is a direct connection whatever ssh_config says, so it is kept
		{map[string]any{"ansible_ssh_common_args": "-o ProxyJump=none"}, Connection{ProxyJump: "none"}},
		{map[string]any{"ansible_ssh_common_args": "-J NONE -J b"}, Connection{ProxyJump: "none"}},
		// as ssh reads its command line, the first value wins: common args come before extra
		{map[string]any{"ansible_ssh_common_args": "-o ProxyJump=a", "ansible_ssh_extra_args": "-J b"}, Connection{ProxyJump: "a"}},
		// ProxyJump and ProxyCommand compete: the first given wins
		{map[string]any{"ansible_ssh_common_args": "-o 'ProxyCommand=ssh -W %h:%p c' -J d"}, Connection{ProxyJump: "c"}},
		{map[string]any{"ansible_ssh_common_args": "-o 'ProxyCommand=nc %h %p' -J d"}, Connection{}},
		{map[string]any{"ansible_ssh_args": "-J first", "ansible_ssh_common_args": "-J second"}, Connection{ProxyJump: "first"}},
		// port, user and key from the ssh arguments when the variables do not give them
		{map[string]any{"ansible_ssh_common_args": "-p 2200 -l admin -i ~/.ssh/k"}, Connection{Port: 2200, User: "admin", IdentityFile: "~/.ssh/k"}},
		{map[string]any{"ansible_ssh_extra_args": "-qp2201 -oUser=op"}, Connection{Port: 2201, User: "op"}},
		{map[string]any{"ansible_port": int64(2222), "ansible_user": "u", "ansible_ssh_common_args": "-p 2200 -o User=x"}, Connection{Port: 2222, User: "u"}},
		{map[string]any{"ansible_port": "nope"}, Connection{}},
		// become, with the become method's own variables read after the common ones
		{map[string]any{"ansible_become": "yes", "ansible_become_user": "svc", "ansible_become_password": "bp"},
			Connection{Become: Yes, BecomeUser: "svc", BecomePassword: "bp"}},
		{map[string]any{"ansible_become": false}, Connection{Become: No}},
		{map[string]any{"ansible_become": "maybe"}, Connection{}},
		{map[string]any{"ansible_become_method": "su", "ansible_become_pass": "a", "ansible_su_pass": "b", "ansible_sudo_pass": "c", "ansible_su_user": "op"},
			Connection{BecomeMethod: "su", BecomeUser: "op", BecomePassword: "b"}},
		{map[string]any{"ansible_become_pass": "a", "ansible_sudo_pass": "c", "ansible_su_pass": "b"}, Connection{BecomePassword: "c"}},
		{map[string]any{"ansible_become_method": "doas", "ansible_doas_user": "d"}, Connection{BecomeMethod: "doas", BecomeUser: "d"}},
		{map[string]any{"ansible_become_method": "ansible.builtin.su", "ansible_su_pass": "b", "ansible_sudo_pass": "c"},
			Connection{BecomeMethod: "su", BecomePassword: "b"}},
		// the paramiko connection's own names count under that connection only
		{map[string]any{"ansible_connection": "paramiko", "ansible_paramiko_user": "pu", "ansible_paramiko_pass": "pp"},
			Connection{User: "pu", Password: "pp"}},
		{map[string]any{"ansible_paramiko_user": "pu", "ansible_paramiko_pass": "pp"}, Connection{}},
	}
	for _, tt := range tests {
		h := &Host{Name: "h", Vars: tt.vars}
		if got := h.Connection(); got != tt.want {
			t.Errorf("Connection(%v) = %#v, want %#v", tt.vars, got, tt.want)
		}
	}
}

// No verb prints a Connection's passwords; %#v shows the rest, and which are set.
func TestConnectionHidesPasswords(t *testing.T) {
	c := Connection{Address: "10.0.0.1", Port: 2222, User: "deploy", ProxyJump: "bastion",
		Password: "s3cr3t-login", BecomeUser: "svc", BecomePassword: "s3cr3t-become"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%60v", "%-v"} {
		out := fmt.Sprintf(verb, c) + fmt.Sprintf(verb, &c) + fmt.Sprintf(verb, []Connection{c}) +
			fmt.Sprintf(verb, struct{ C Connection }{c})
		if strings.Contains(out, "s3cr3t") || strings.Contains(out, "73336372337") /* hex */ {
			t.Errorf("%s shows a password: %s", verb, out)
		}
	}
	if got := fmt.Sprint(c); got != "deploy@10.0.0.1:2222 via bastion" {
		t.Errorf("String() = %q", got)
	}
	if got := fmt.Sprintf("%#v", c); !strings.Contains(got, `BecomeUser:"svc"`) || !strings.Contains(got, `Password:"********"`) ||
		!strings.Contains(got, `BecomePassword:"********"`) {
		t.Errorf("GoString() = %s", got)
	}
	if got := fmt.Sprintf("%#v", Connection{User: "u"}); !strings.Contains(got, `Password:""`) {
		t.Errorf("GoString() of a connection without passwords = %s", got)
	}
}

func TestCtyValue(t *testing.T) {
	v := CtyValue(map[string]any{
		"s": "x", "b": true, "i": int64(3), "f": 1.5, "n": nil, "big": json.Number("123456789012345678901234"),
		"l": []any{int64(1), "a"}, "e": []any{}, "m": map[string]any{}, "nan": nanValue(),
	})
	if !v.Type().IsObjectType() {
		t.Fatalf("type %s", v.Type().FriendlyName())
	}
	if got := v.GetAttr("i"); !got.RawEquals(cty.NumberIntVal(3)) {
		t.Errorf("i = %#v", got)
	}
	if got := v.GetAttr("l"); !got.Type().IsTupleType() || got.LengthInt() != 2 {
		t.Errorf("l = %#v", got)
	}
	if got := v.GetAttr("big"); got.Type() != cty.Number || got.AsBigFloat().Text('f', 0) != "123456789012345678901234" {
		t.Errorf("big = %#v", got.AsBigFloat().String())
	}
	if got := v.GetAttr("nan"); !got.IsNull() {
		t.Errorf("NaN = %#v", got)
	}
	if got := v.GetAttr("n"); !got.IsNull() {
		t.Errorf("nil = %#v", got)
	}
	if !v.GetAttr("e").RawEquals(cty.EmptyTupleVal) || !v.GetAttr("m").RawEquals(cty.EmptyObjectVal) {
		t.Error("empty collections")
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

func TestMain(m *testing.M) {
	code := m.Run()
	if ansibleEnvDir != "" {
		os.RemoveAll(ansibleEnvDir)
	}
	os.Exit(code)
}
