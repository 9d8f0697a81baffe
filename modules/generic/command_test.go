package generic

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/modules"
	"github.com/runbook/runbook/modules/moduletest"
)

const token = "hunter2-very-secret"

func TestCommandLineRedactedBeforeItIsCut(t *testing.T) {
	list := func(ws ...string) cty.Value {
		vs := make([]cty.Value, len(ws))
		for i, w := range ws {
			vs[i] = s(w)
		}
		return cty.ListVal(vs)
	}
	pad := strings.Repeat("p", 189) // "echo " + pad + " " puts the token at byte 195
	tests := []struct {
		name      string
		m         modules.Module
		args      map[string]cty.Value
		sensitive []string
		want      string
	}{
		{name: "a secret straddling the cut", m: Command{}, args: map[string]cty.Value{"argv": list("echo", pad, token)}, sensitive: []string{"argv"},
			want: "would run: " + modules.Redacted + " " + modules.Redacted + " " + modules.Redacted},
		{name: "a secret spanning words, straddling the cut", m: Command{}, args: map[string]cty.Value{"argv": list("echo", pad, token),
			"stdin": s("ppp " + token)}, sensitive: []string{"stdin"}, want: "would run: echo " + pad[3:] + modules.Redacted},
		{name: "a secret is hidden before the word is quoted", m: Command{}, args: map[string]cty.Value{"argv": list("echo", "say it's-"+token+" now"),
			"stdin": s("it's-" + token)}, sensitive: []string{"stdin"}, want: "would run: echo 'say (sensitive value) now'"},
		{name: "a secret cmd is not shown quoted anew", m: Command{}, args: map[string]cty.Value{"cmd": s(`echo "a b" ` + token)}, sensitive: []string{"cmd"},
			want: "would run: " + modules.Redacted},
		{name: "a secret shell script", m: Shell{}, args: map[string]cty.Value{"cmd": s("echo " + token)}, sensitive: []string{"cmd"},
			want: "would run: /bin/sh -c " + modules.Redacted},
		{name: "a secret inside a word keeps the rest", m: Command{}, args: map[string]cty.Value{"argv": list("login", "--password="+token),
			"stdin": s(token)}, sensitive: []string{"stdin"}, want: "would run: login --password=" + modules.Redacted},
		{name: "a long line is cut on a character boundary", m: Command{}, args: map[string]cty.Value{"argv": list("echo", strings.Repeat("p", 194)+"ééé")},
			want: "would run: echo " + strings.Repeat("p", 194) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := moduletest.Run(t, tt.m, tt.args, false, moduletest.Sensitive(tt.sensitive...))
			if err != nil {
				t.Fatal(err)
			}
			if res.Msg != tt.want {
				t.Errorf("Msg = %q\nwant  %q", res.Msg, tt.want)
			}
			if !utf8.ValidString(res.Msg) {
				t.Errorf("Msg splits a character: %q", res.Msg)
			}
		})
	}
}

func TestCommandOutputRedactedBeforeItIsCut(t *testing.T) {
	// The secret starts 5 bytes before the cap on both streams, and the command fails, so
	// stderr travels in the failure too.
	args := map[string]cty.Value{
		"cmd": s(`head -c 995 /dev/zero | tr '\0' x; printf %s "$T"; head -c 995 /dev/zero | tr '\0' x >&2; printf %s "$T" >&2; exit 3`),
		"env": cty.MapVal(map[string]cty.Value{"T": s(token)}),
	}
	res, err := moduletest.Run(t, Shell{}, args, true, moduletest.Sensitive("env"),
		moduletest.WithEnv(func(e *modules.Env) { e.OutputLimit = 1000 }), moduletest.Timeout(10*time.Second))
	var f *modules.Failure
	if !errors.As(err, &f) || res == nil {
		t.Fatalf("err = %v, res = %+v", err, res)
	}
	// The whole secret was kept past the cap, so it is replaced whole and nothing is left out.
	want := strings.Repeat("x", 995) + modules.Redacted
	data := res.Data.(commandResult)
	for name, got := range map[string]string{"stdout": data.Stdout, "stderr": data.Stderr, "failure stderr": f.Stderr} {
		if got != want {
			t.Errorf("%s = …%q; want 995 x and %s", name, got[max(0, len(got)-60):], modules.Redacted)
		}
	}
}
