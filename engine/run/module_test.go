package run

import (
	"slices"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestPreparedSensitive(t *testing.T) {
	obj := func(kv ...string) cty.Value {
		m := map[string]cty.Value{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = cty.StringVal(kv[i+1])
		}
		return cty.ObjectVal(m)
	}
	tests := []struct {
		name           string
		names          []string
		orig, prepared cty.Value
		want           []string
	}{
		{"nothing secret: rendered content is plain", nil, obj("src", "t.tmpl"), obj("content", "x"), nil},
		{"a secret input: rendered content is secret", []string{"mode"}, obj("src", "t.tmpl", "mode", "0600"), obj("content", "x", "mode", "0600"), []string{"mode", "content"}},
		{"content passed on unchanged keeps its own status", []string{"owner"}, obj("content", "x", "owner", "r"), obj("content", "x", "owner", "r"), []string{"owner"}},
		{"content changed by preparing", []string{"owner"}, obj("content", "${x}", "owner", "r"), obj("content", "x", "owner", "r"), []string{"owner", "content"}},
		{"content already secret", []string{"content"}, obj("content", "x"), obj("content", "y"), []string{"content"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := preparedSensitive(tt.names, tt.orig, tt.prepared); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
