// Package diagtest reads the expected-diagnostic markers of error fixtures. A fixture marks
// each mistake with a comment on the offending line, "# ERROR: Summary", or on another line
// with an offset, "# ERROR@-1: Summary" for the line above; "# WARNING: Summary" likewise.
package diagtest

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Marker is one expected diagnostic.
type Marker struct {
	Line     int
	Severity hcl.DiagnosticSeverity
	Summary  string
}

var markerRE = regexp.MustCompile(`#\s*(ERROR|WARNING)(@[-+]\d+)?:\s*(.+?)\s*$`)

// Markers reads a fixture's markers.
func Markers(src []byte) ([]Marker, error) {
	var out []Marker
	for i, line := range strings.Split(string(src), "\n") {
		m := markerRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n := i + 1
		if m[2] != "" {
			off, err := strconv.Atoi(m[2][1:])
			if err != nil {
				return nil, fmt.Errorf("line %d: bad marker offset %q", i+1, m[2])
			}
			n += off
		}
		sev := hcl.DiagError
		if m[1] == "WARNING" {
			sev = hcl.DiagWarning
		}
		out = append(out, Marker{Line: n, Severity: sev, Summary: m[3]})
	}
	return out, nil
}
