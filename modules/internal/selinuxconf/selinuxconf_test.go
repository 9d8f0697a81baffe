package selinuxconf

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		in, mode, policy string
	}{
		{"# comment\nSELINUX=enforcing\nSELINUXTYPE=targeted\n", "enforcing", "targeted"},
		{"SELINUX=Permissive\r\nSELINUXTYPE=mls\r\n", "permissive", "mls"},
		// the first SELINUX= line libselinux understands sets the mode; quotes are kept
		{"SELINUX=enforcing\nSELINUX=disabled\n", "enforcing", ""},
		{"SELINUX=\"disabled\"\nSELINUX=permissive\n", "permissive", ""},
		{"  SELINUX=disabled\nSELINUX = disabled\n# SELINUX=disabled\n", "", ""},
		{"SELINUX= disabled # for now\n  selinuxtype= targeted \nSELINUXTYPE='mls'\n", "disabled", "'mls'"},
		{"", "", ""},
	}
	for _, tt := range tests {
		if mode, policy := Parse([]byte(tt.in)); mode != tt.mode || policy != tt.policy {
			t.Errorf("Parse(%q) = %q, %q; want %q, %q", tt.in, mode, policy, tt.mode, tt.policy)
		}
	}
}
