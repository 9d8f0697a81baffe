package modules

import (
	"strings"

	"github.com/agext/levenshtein"
)

// Suggest returns the candidate closest to given, if one is close enough to be a likely typo.
func Suggest(given string, candidates []string) string {
	// An abbreviation ("dir" for "directory") is a likelier intent than a distant typo.
	if len(given) >= 2 {
		for _, c := range candidates {
			if strings.HasPrefix(c, given) {
				return c
			}
		}
	}
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}
