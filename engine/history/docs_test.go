package history

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDocsQueries runs every ```sql example of docs/compliance.md on both backends against
// a small recorded history: the queries the docs offer work on SQLite and PostgreSQL, and
// the SELECTs find what they say they find.
func TestDocsQueries(t *testing.T) {
	src, err := os.ReadFile("../../docs/compliance.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(src), -1)
	if len(blocks) < 3 {
		t.Fatalf("found %d sql examples in docs/compliance.md", len(blocks))
	}
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			s := be.open(t).(*sqlStore)
			at := time.Date(2026, 5, 1, 2, 30, 0, 0, time.UTC)
			// An exec whose change web1 rolled back (and web2 confirmed), before the
			// checks: the last runs stay the checks'.
			record(t, s, runSpec{mode: ModeExec, plays: []string{"web1 motd=rolled_back; web2 motd=confirmed"}}, at.Add(-24*time.Hour))
			record(t, s, runSpec{plays: []string{"web1 motd=ok; web2 motd=ok"}}, at)
			record(t, s, runSpec{plays: []string{"web1 motd=drift sysctl=ok; web2 motd=ok"}}, at.Add(24*time.Hour))
			ctx := context.Background()
			for i, b := range blocks {
				for _, st := range statements(b[1]) {
					if !strings.HasPrefix(strings.ToUpper(st), "SELECT") {
						if _, err := s.db.ExecContext(ctx, st); err != nil {
							t.Errorf("example %d: %v\n%s", i+1, err, st)
						}
						continue
					}
					rows, err := s.db.QueryContext(ctx, st)
					if err != nil {
						t.Errorf("example %d: %v\n%s", i+1, err, st)
						continue
					}
					cols, _ := rows.Columns()
					var first []string
					n := 0
					for rows.Next() {
						vals := make([]any, len(cols))
						ptrs := make([]any, len(cols))
						for j := range vals {
							ptrs[j] = &vals[j]
						}
						if err := rows.Scan(ptrs...); err != nil {
							t.Fatal(err)
						}
						if n == 0 {
							for _, v := range vals {
								first = append(first, strings.TrimSpace(toString(v)))
							}
						}
						n++
					}
					rows.Close()
					if n != 1 || !(first[0] == "web1" || first[0] == "motd") {
						t.Errorf("example %d: %d rows, first %v; want one row about web1's motd", i+1, n, first)
					}
				}
			}
		})
	}
}

func toString(v any) string {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case string:
		return x
	}
	return ""
}
