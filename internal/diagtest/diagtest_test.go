package diagtest

import (
	"reflect"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestMarkers(t *testing.T) {
	src := "a = 1 # ERROR: Bad thing\nb = 2\n# ERROR@-1: Other thing\n  c # WARNING: Careful  \n"
	got, err := Markers([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Marker{{1, hcl.DiagError, "Bad thing"}, {2, hcl.DiagError, "Other thing"}, {4, hcl.DiagWarning, "Careful"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
