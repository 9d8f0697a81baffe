package view

import (
	"bytes"
	"encoding/xml"
	"testing"
)

func TestJUnit(t *testing.T) {
	var b bytes.Buffer
	if err := feed(&JUnit{W: &b}); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, b.String())
	}
	if len(doc.Suites) != 3 || doc.Suites[0].Name != "kvm01" || doc.Suites[0].Tests != 3 || doc.Suites[0].Skipped != 1 {
		t.Errorf("suites = %+v", doc.Suites)
	}
	if doc.Suites[1].Failures != 1 || doc.Suites[2].Failures != 1 {
		t.Errorf("failures not counted: %+v", doc.Suites)
	}
}
