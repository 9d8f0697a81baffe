package accounts

import (
	"reflect"
	"strings"
	"testing"
)

const (
	keyA   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDzFxYcgSY7yJ5LM7bmm4SQAf9I5p2XLBM59XiYeY7Vt a@example"
	fpA    = "SHA256:PrprFz3lKP3lmyuUrsdeJ+eMpVLPjLorHwnchXdqM0I"
	keyB   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILBAPP1aTieqIWXRIgwvSPcx1IsPzNjLC4LUAybzGH3e b@example"
	fpB    = "SHA256:3Da8HfTSpXKonAyIUJT3BrekoGbSvBiUOptSfG7ojEc"
	keyC   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAZmCWbCtjvCKKpwHSZ7pzJKVWO3W58HVK7aj6+cXW6e c@example"
	fpC    = "SHA256:YPVwwf3ncke7HcwasRdDfoXFcZRdK68bkmnqyAVeQR4"
	keyRSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDCTyK+rKiD4HjEPjKUpc7pDq8tydyXvuSra3CStlUmSLK3sx96Pe7xdGcVGUvgOSTF8o902tJdNeaCSF/RTAMqOM8/TPsW9fvFjsyuh0eaCeFfysl2mspC8VdceGTC5ZItKpnpQy08FLZ4WYxc9XfFEQNzI3DtayJ58PX6yF3SDQ== r"
	// hashA is openssl passwd -6 -salt abcdefgh secret.
	hashA = "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG."
	hashB = "$y$j9T$F5Jx5fExrKuJdUQwoX1XJ.$xAFIkCsD6T8a6fHVUfu9l5ZbZ5rOQq4IB7vvJQM9KC5"
)

func TestParseAccountFiles(t *testing.T) {
	passwd := "root:x:0:0:root:/root:/bin/bash\n# a comment\n\n+nisuser::::::\nalice:x:1000:1000:Alice A,,,:/home/alice:/bin/bash\r\nbad:x:one:1::/:/bin/sh\nshort:x:1\n"
	got := parsePasswd([]byte(passwd))
	want := []passwdEntry{{Name: "root", UID: 0, GID: 0, Comment: "root", Home: "/root", Shell: "/bin/bash"},
		{Name: "alice", UID: 1000, GID: 1000, Comment: "Alice A,,,", Home: "/home/alice", Shell: "/bin/bash"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("passwd: got %+v", got)
	}
	shadow := "root:*:19000:0:99999:7:::\nalice:!" + hashA + ":19000:0:99999:7:::\nbob::19000::::::\n"
	if got := parseShadow([]byte(shadow)); !reflect.DeepEqual(got, []shadowEntry{{"root", "*"}, {"alice", "!" + hashA}, {"bob", ""}}) {
		t.Errorf("shadow: got %+v", got)
	}
	group := "root:x:0:\nsudo:x:27:alice,bob\nops:x:2001: alice \nbroken:x:-1:\n"
	gs := parseGroup([]byte(group))
	if !reflect.DeepEqual(gs, []groupEntry{{"root", 0, nil}, {"sudo", 27, []string{"alice", "bob"}}, {"ops", 2001, []string{"alice"}}}) {
		t.Errorf("group: got %+v", gs)
	}
	if s := supplementary(gs, "alice"); !reflect.DeepEqual(s, []string{"sudo", "ops"}) {
		t.Errorf("supplementary: %v", s)
	}
	if g := groupByID(gs, 27); g == nil || g.Name != "sudo" {
		t.Errorf("groupByID: %v", g)
	}
}

func TestNamesAndPasswords(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{{"deploy", true}, {"_svc", true}, {"a-b_c9", true}, {"host$", true}, {"-rf", false}, {"--help", false},
		{"Alice", false}, {"9lives", false}, {"a b", false}, {"a:b", false}, {"a\nb", false}, {"", false},
		{strings.Repeat("a", 32), true}, {strings.Repeat("a", 33), false}, {"a.b", false}, {"$x", false}} {
		if err := validName(tc.name); (err == nil) != tc.ok {
			t.Errorf("validName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	for _, tc := range []struct {
		pw string
		ok bool
	}{{hashA, true}, {hashB, true}, {"$5$rounds=5000$saltsalt$Ii3P6sd3fUXqM8wT9h5Yz7wTJp5Bd2FxfgU6LHDsoP7", true},
		{"$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", true}, {"!", true}, {"*", true},
		{"secret", false}, {"correct horse battery staple", false}, {"$6$salt", false}, {"$6$salt$short", false},
		{hashA + "\nroot:$6$x$" + strings.Repeat("a", 20), false}, {hashA + ":0", false}, {"!" + hashA, false}, {"", false},
		{"$ecret$password1234567890abcd", false}} {
		if msg := validPassword(tc.pw); (msg == "") != tc.ok {
			t.Errorf("validPassword(%q) = %q, want ok=%v", tc.pw, msg, tc.ok)
		}
		if msg := validPassword(tc.pw); tc.pw != "" && tc.pw != "!" && tc.pw != "*" && strings.Contains(msg, tc.pw) {
			t.Errorf("the message quotes the password: %s", msg)
		}
	}
}

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		line    string
		want    authKey
		wantErr string
	}{
		{line: keyA, want: authKey{Type: "ssh-ed25519", Blob: "AAAAC3NzaC1lZDI1NTE5AAAAIDzFxYcgSY7yJ5LM7bmm4SQAf9I5p2XLBM59XiYeY7Vt", Comment: "a@example"}},
		{line: "  " + keyRSA + "  ", want: authKey{Type: "ssh-rsa", Blob: strings.Fields(keyRSA)[1], Comment: "r"}},
		{line: `from="10.0.0.0/8,192.0.2.1",command="echo \"hi there\"",no-pty ` + keyB,
			want: authKey{Options: `from="10.0.0.0/8,192.0.2.1",command="echo \"hi there\"",no-pty`, Type: "ssh-ed25519", Blob: strings.Fields(keyB)[1], Comment: "b@example"}},
		{line: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDzFxYcgSY7yJ5LM7bmm4SQAf9I5p2XLBM59XiYeY7Vt a comment with spaces",
			want: authKey{Type: "ssh-ed25519", Blob: "AAAAC3NzaC1lZDI1NTE5AAAAIDzFxYcgSY7yJ5LM7bmm4SQAf9I5p2XLBM59XiYeY7Vt", Comment: "a comment with spaces"}},
		{line: strings.Fields(keyA)[0] + " " + strings.Fields(keyA)[1], want: authKey{Type: "ssh-ed25519", Blob: strings.Fields(keyA)[1]}},
		{line: "ssh-rsa " + strings.Fields(keyA)[1], wantErr: "does not hold a ssh-rsa key"},
		{line: "ssh-ed25519 not!base64", wantErr: "not valid base64"},
		{line: "ssh-ed25519 AAAAC3Nz", wantErr: "does not hold a ssh-ed25519 key"},
		{line: `from="10.0.0.1 ` + keyA, wantErr: "does not end"},
		{line: "ssh-foo AAAA", wantErr: "no key type sshd knows"},
		{line: "no-pty", wantErr: "expected [options] TYPE BASE64"},
		{line: keyA + "\nssh-ed25519 x", wantErr: "one line"},
	} {
		got, err := parseKey(tc.line)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseKey(%q): err %v, want %q", tc.line, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseKey(%q) = %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
	}
	k, _ := parseKey(keyA)
	if k.Fingerprint() != fpA {
		t.Errorf("fingerprint %s, want %s (ssh-keygen -lf)", k.Fingerprint(), fpA)
	}
}

func TestEditKeys(t *testing.T) {
	file := "# managed by hand\n" + keyA + "\n\n" + `no-pty ` + keyB + "\nnot a key line\n"
	k := func(lines ...string) []authKey {
		ks, err := wantKeys(strings.Join(lines, "\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return ks
	}
	withOpts := func(opts string, ks []authKey) []authKey {
		for i := range ks {
			ks[i].Options = opts
		}
		return ks
	}
	for _, tc := range []struct {
		name               string
		want               []authKey
		present, exclusive bool
		out                string
		added, removed     []string
	}{
		{name: "already there", want: k(keyA), present: true, out: file},
		{name: "added at the end", want: k(keyA, keyC), present: true, out: file + keyC + "\n", added: []string{fpC}},
		{name: "options changed in place", want: withOpts(`from="192.0.2.0/24"`, k(keyA)), present: true,
			out: strings.Replace(file, keyA, `from="192.0.2.0/24" `+keyA, 1)},
		{name: "options removed, comment kept", want: k(strings.Join(strings.Fields(keyB)[:2], " ")), present: true,
			out: strings.Replace(file, "no-pty "+keyB, keyB, 1)},
		{name: "absent", want: k(keyB), present: false, out: strings.Replace(file, "no-pty "+keyB+"\n", "", 1), removed: []string{fpB}},
		{name: "exclusive keeps comments, not odd lines", want: k(keyC), present: true, exclusive: true,
			out: "# managed by hand\n\n" + keyC + "\n", added: []string{fpC}, removed: []string{fpA, fpB}},
		{name: "a duplicate removed", want: k(keyA), present: true, out: file, removed: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := file
			if tc.name == "a duplicate removed" {
				in = file + keyA + "\n"
				tc.removed = []string{fpA}
			}
			lines, added, removed, _ := editKeys(parseKeyFile([]byte(in)), tc.want, tc.present, tc.exclusive)
			if got := string(renderKeyFile(lines)); got != tc.out {
				t.Errorf("file:\n%s\nwant:\n%s", got, tc.out)
			}
			if !reflect.DeepEqual(added, tc.added) || !reflect.DeepEqual(removed, tc.removed) {
				t.Errorf("added %v removed %v, want %v %v", added, removed, tc.added, tc.removed)
			}
		})
	}
}

// TestKeyOptionsArgument: key_options replaces the options of every key, "" included (it
// removes them), and options that would not read back as the same key line (a quote left
// open, a key type where the options go) are refused, in Validate as in Run: such a line
// is not the key to sshd, and is appended again at every run.
func TestKeyOptionsArgument(t *testing.T) {
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		name    string
		key     string
		opts    *string
		want    string // the options of the key
		wantErr string
	}{
		{name: "unset keeps the line's", key: "no-pty " + keyA, want: "no-pty"},
		{name: "replaces the line's", key: "no-pty " + keyA, opts: str(`from="192.0.2.0/24"`), want: `from="192.0.2.0/24"`},
		{name: "empty removes them", key: "no-pty " + keyA, opts: str(""), want: ""},
		{name: "quoted blanks", key: keyA, opts: str(`command="echo hi",no-pty`), want: `command="echo hi",no-pty`},
		{name: "a quote left open", key: keyA, opts: str(`from="192.0.2.1`), wantErr: "key_options"},
		{name: "a key type", key: keyA, opts: str("ssh-rsa"), wantErr: "key_options"},
		{name: "a blank outside quotes", key: keyA, opts: str("no-pty no-X11-forwarding"), wantErr: "key_options"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := wantKeys(tc.key, tc.opts)
			args := keyArgs{User: "alice", Key: tc.key, State: "present", KeyOptions: tc.opts}
			verrs := AuthorizedKey{}.Validate(args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("wantKeys: %v %+v, want an error about %s", err, ks, tc.wantErr)
				}
				if len(verrs) == 0 {
					t.Errorf("Validate took it")
				}
				return
			}
			if err != nil || len(ks) != 1 || ks[0].Options != tc.want || len(verrs) > 0 {
				t.Fatalf("%v %+v %v, want options %q", err, ks, verrs, tc.want)
			}
		})
	}
}

// TestLongKeyLineInFile: sshd reads a key line of any length (ssh-keygen -lf takes one with
// a 20 KB comment or from= option, as sshd's own parser does), so a long line in the file
// is a key like any other: state = "absent" and exclusive remove it. Only the key
// argument is bounded.
func TestLongKeyLineInFile(t *testing.T) {
	long := []string{
		keyA + " " + strings.Repeat("c", 20000),
		`from="` + strings.Repeat("1", 20000) + `" ` + keyA,
	}
	for i, line := range long {
		file := "# mine\n" + line + "\n" + keyB + "\n"
		for _, tc := range []struct {
			name               string
			want               string
			present, exclusive bool
			out                string
		}{
			{name: "absent", want: keyA, out: "# mine\n" + keyB + "\n"},
			{name: "exclusive", want: keyB, present: true, exclusive: true, out: "# mine\n" + keyB + "\n"},
		} {
			want, err := wantKeys(tc.want, nil)
			if err != nil {
				t.Fatal(err)
			}
			lines, _, removed, _ := editKeys(parseKeyFile([]byte(file)), want, tc.present, tc.exclusive)
			if got := string(renderKeyFile(lines)); got != tc.out || len(removed) != 1 || removed[0] != fpA {
				t.Errorf("line %d, %s: removed %v, file now %.80q", i, tc.name, removed, got)
			}
		}
	}
	if _, err := wantKeys(long[0], nil); err == nil {
		t.Error("a key argument of 20 KB was taken")
	}
}

// TestKeyUnderAnotherName: sshd (and ssh-keygen -lf) take an RSA key or certificate
// under the names of its signature algorithms, "rsa-sha2-512 AAAAB3...": that line is the
// same key, which absent removes and present does not add twice.
func TestKeyUnderAnotherName(t *testing.T) {
	blob := strings.Fields(keyRSA)[1]
	for _, name := range []string{"rsa-sha2-256", "rsa-sha2-512"} {
		line := name + " " + blob + " planted"
		k, err := parseKey(line)
		if err != nil || k.Blob != blob {
			t.Errorf("parseKey(%s ...): %+v %v", name, k, err)
			continue
		}
		want, _ := wantKeys(keyRSA, nil)
		lines, _, removed, _ := editKeys(parseKeyFile([]byte(line+"\n")), want, false, false)
		if len(lines) != 0 || len(removed) != 1 {
			t.Errorf("%s: absent left %q, removed %v", name, renderKeyFile(lines), removed)
		}
		lines, added, _, _ := editKeys(parseKeyFile([]byte(line+"\n")), want, true, false)
		if len(added) != 0 || len(lines) != 1 {
			t.Errorf("%s: present added %v: %q", name, added, renderKeyFile(lines))
		}
	}
	if _, err := parseKey("rsa-sha2-512 " + strings.Fields(keyA)[1]); err == nil {
		t.Error("an ed25519 key under an RSA name was taken")
	}
}

// TestExclusiveDropsUnreadLines: exclusive leaves comments and blank lines and the keys
// asked for, and nothing else: a line runbook does not read as a key may still be one
// to sshd (a key type it learnt later, a form it also takes), so it goes too.
func TestExclusiveDropsUnreadLines(t *testing.T) {
	for _, tc := range []struct {
		name, file, out string
		dropped         int
	}{
		{name: "unknown type", file: "ssh-newalg@openssh.com AAAAC3Nz planted\n" + keyA + "\n", out: keyA + "\n", dropped: 1},
		{name: "odd line", file: "# mine\n\nnot a key line\n" + keyA + "\n", out: "# mine\n\n" + keyA + "\n", dropped: 1},
		{name: "indented comment stays", file: "   # mine\n" + keyA + "\n", out: "   # mine\n" + keyA + "\n"},
	} {
		want, _ := wantKeys(keyA, nil)
		lines, _, _, dropped := editKeys(parseKeyFile([]byte(tc.file)), want, true, true)
		if got := string(renderKeyFile(lines)); got != tc.out || dropped != tc.dropped {
			t.Errorf("%s: %q, %d dropped; want %q, %d", tc.name, got, dropped, tc.out, tc.dropped)
		}
		// Without exclusive, such lines stay.
		lines, _, _, dropped = editKeys(parseKeyFile([]byte(tc.file)), want, true, false)
		if got := string(renderKeyFile(lines)); got != tc.file || dropped != 0 {
			t.Errorf("%s, not exclusive: %q", tc.name, got)
		}
	}
}
