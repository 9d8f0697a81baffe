package view

import (
	"fmt"
	"strings"

	"github.com/runbook/runbook/internal/termsafe"
	"github.com/runbook/runbook/modules"
)

// Unified renders a diff as unified-diff text with a few lines of context. The headers
// come from the host (a path) and are escaped to one line each (termsafe.Line), so that a
// header cannot add lines that read as the diff's own, in any printer or report.
func Unified(d *modules.Diff) string {
	if d == nil {
		return ""
	}
	before, after := termsafe.Line(d.BeforeHeader), termsafe.Line(d.AfterHeader)
	if before == "" {
		before = "before"
	}
	if after == "" {
		after = "after"
	}
	a, b := splitLines(d.Before), splitLines(d.After)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", before, after)
	for _, op := range diffLines(a, b) {
		out.WriteString(op)
		out.WriteString("\n")
	}
	return out.String()
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// diffLines is a longest-common-subsequence line diff, keeping 3 lines of context around
// changes. Inputs are configuration files: small enough for the quadratic table.
func diffLines(a, b []string) []string {
	const maxCells = 4_000_000
	if len(a)*len(b) > maxCells {
		var out []string
		for _, l := range a {
			out = append(out, "-"+l)
		}
		for _, l := range b {
			out = append(out, "+"+l)
		}
		return out
	}
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []string
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, " "+a[i])
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, "-"+a[i])
			i++
		default:
			ops = append(ops, "+"+b[j])
			j++
		}
	}
	// Keep context lines only near changes.
	keep := make([]bool, len(ops))
	for k, op := range ops {
		if op[0] != ' ' {
			for c := max(0, k-3); c <= min(len(ops)-1, k+3); c++ {
				keep[c] = true
			}
		}
	}
	var out []string
	skipped := false
	for k, op := range ops {
		if keep[k] {
			out = append(out, op)
			skipped = false
		} else if !skipped {
			out = append(out, "@@")
			skipped = true
		}
	}
	return out
}
