package view

import (
	"bytes"
	"strings"
	"testing"
)

// TestNew: each kind gets its view, built from the same options; an unknown kind is an
// error that names it.
func TestNew(t *testing.T) {
	var w bytes.Buffer
	opts := Options{W: &w, Color: true, Verbose: true, Quiet: true, Diff: true, Live: true, Total: 7, Check: true}
	cases := []struct {
		kind    Kind
		check   func(t *testing.T, v View)
		wantErr string
	}{
		{kind: KindHuman, check: func(t *testing.T, v View) {
			h, ok := v.(*Human)
			if !ok {
				t.Fatalf("%T, want *Human", v)
			}
			want := Human{W: &w, Color: true, Verbose: true, Quiet: true, Diff: true, Live: true, Total: 7, DriftReport: true}
			if h.W != want.W || h.Color != want.Color || h.Verbose != want.Verbose || h.Quiet != want.Quiet || h.Diff != want.Diff ||
				h.Live != want.Live || h.Total != want.Total || h.DriftReport != want.DriftReport {
				t.Errorf("options not carried: %+v", h)
			}
		}},
		{kind: KindJSON, check: func(t *testing.T, v View) {
			if j, ok := v.(*JSON); !ok || j.W != &w {
				t.Errorf("%T %+v, want *JSON writing to the options' writer", v, v)
			}
		}},
		{kind: KindJUnit, check: func(t *testing.T, v View) {
			if u, ok := v.(*JUnit); !ok || u.W != &w {
				t.Errorf("%T %+v, want *JUnit writing to the options' writer", v, v)
			}
		}},
		{kind: "", wantErr: `no output format ""`},
		{kind: "yaml", wantErr: `no output format "yaml" ("text", "json" or "junit")`},
		{kind: "JSON", wantErr: `no output format "JSON"`},
	}
	for _, c := range cases {
		t.Run(string(c.kind), func(t *testing.T) {
			v, err := New(c.kind, opts)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("New(%q) = %v, %v; want an error with %q", c.kind, v, err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, v)
		})
	}
}

// TestHoldRunsFn: every view runs what it is asked to hold for, once.
func TestHoldRunsFn(t *testing.T) {
	for _, k := range []Kind{KindHuman, KindJSON, KindJUnit} {
		v, err := New(k, Options{W: &bytes.Buffer{}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		v.Hold(func() { n++ })
		if n != 1 {
			t.Errorf("%s: Hold ran fn %d times", k, n)
		}
	}
}
