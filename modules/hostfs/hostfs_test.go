package hostfs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		path     string
		existing string
		opts     Options
		wantErr  string
		want     string // the file afterwards ("" with wantErr: unchanged)
		wantMode os.FileMode
	}{
		{name: "new file", path: "a.conf", opts: Options{Mode: 0o640, UID: -1, GID: -1}, want: "new\n", wantMode: 0o640},
		{name: "replaces", path: "b.conf", existing: "old\n", opts: Options{Mode: 0o600, UID: -1, GID: -1}, want: "new\n", wantMode: 0o600},
		{name: "makes directories", path: "x/y/c.conf", opts: Options{Mode: 0o644, UID: -1, GID: -1, MkdirAll: true}, want: "new\n", wantMode: 0o644},
		{name: "missing directory", path: "nope/d.conf", opts: Options{Mode: 0o644, UID: -1, GID: -1}, wantErr: "no such file"},
		{name: "validation refuses", path: "e.conf", existing: "old\n", opts: Options{Mode: 0o644, UID: -1, GID: -1,
			Validate: func(tmp string) error {
				b, _ := os.ReadFile(tmp)
				return errors.New("refused " + strings.TrimSpace(string(b)))
			}}, wantErr: "refused new", want: "old\n", wantMode: 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.path)
			if tt.existing != "" {
				if err := os.WriteFile(p, []byte(tt.existing), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := WriteAtomic(p, []byte("new\n"), tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" {
				b, err := os.ReadFile(p)
				fi, _ := os.Stat(p)
				if err != nil || string(b) != tt.want || fi.Mode().Perm() != tt.wantMode {
					t.Errorf("file = %q %v %v, want %q %v", b, fi.Mode().Perm(), err, tt.want, tt.wantMode)
				}
			}
			// No temporary file is ever left behind.
			ents, _ := os.ReadDir(filepath.Dir(p))
			for _, e := range ents {
				if strings.Contains(e.Name(), ".runbook-") {
					t.Errorf("left %s", e.Name())
				}
			}
		})
	}
}

func TestRemoveAndReadOptional(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if _, ok, err := ReadOptional(p); ok || err != nil {
		t.Fatalf("missing file: ok %v err %v", ok, err)
	}
	os.WriteFile(p, []byte("x"), 0o644)
	if b, ok, err := ReadOptional(p); !ok || err != nil || string(b) != "x" {
		t.Fatalf("ReadOptional = %q %v %v", b, ok, err)
	}
	for i := 0; i < 2; i++ { // removing a missing file is fine
		if err := Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Errorf("still there: %v", err)
	}
}

func TestShellUnquote(t *testing.T) {
	for in, want := range map[string]string{
		`"mode=4 miimon=100"`: "mode=4 miimon=100",
		`'a b'`:               "a b",
		`plain`:               "plain",
		`"a\"b\$c"`:           `a"b$c`,
		`"A \"b\" c"`:         `A "b" c`,
		`"keep \n"`:           `keep \n`,
		`9100  # jumbo`:       "9100",
		`#comment`:            "",
		`a#b`:                 "a#b",
		`"x"y`:                "xy",
		`a\ b`:                "a b",
		`""`:                  "",
		`'unterminated`:       "unterminated",
	} {
		if got := ShellUnquote(in); got != want {
			t.Errorf("ShellUnquote(%s) = %q, want %q", in, got, want)
		}
	}
}

func TestParseEnvFile(t *testing.T) {
	got := ParseEnvFile(`# os-release
NAME="Debian GNU/Linux"
VERSION_ID="12"
ID=debian

export PRETTY_HOSTNAME='KVM host 01'
BROKEN LINE
ID=debian2
`)
	want := map[string]string{"NAME": "Debian GNU/Linux", "VERSION_ID": "12", "ID": "debian2", "PRETTY_HOSTNAME": "KVM host 01"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseEnvFile = %v, want %v", got, want)
	}
}
