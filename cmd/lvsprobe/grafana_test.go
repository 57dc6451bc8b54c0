package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// dashboardPath is the Grafana dashboard, relative to this package.
const dashboardPath = "../../docs/grafana/lvsprobe.json"

// grafanaDashboard is the part of a dashboard the test reads.
type grafanaDashboard struct {
	UID    string         `json:"uid"`
	Title  string         `json:"title"`
	Panels []grafanaPanel `json:"panels"`
	Annot  struct {
		List []struct {
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
}

type grafanaPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos *struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// dashboardExprs returns every PromQL expression of the dashboard, by
// where it is.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: no uid, title or panels", dashboardPath)
	}
	out := map[string]string{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %d %q: duplicate id or no size", p.ID, p.Title)
		}
		ids[p.ID] = true
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %d %q has no query", p.ID, p.Title)
		}
		for i, tg := range p.Targets {
			out[fmt.Sprintf("panel %d %q target %d", p.ID, p.Title, i)] = tg.Expr
		}
	}
	for i, a := range d.Annot.List {
		if a.Expr != "" {
			out[fmt.Sprintf("annotation %d", i)] = a.Expr
		}
	}
	return out
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promGroupings = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promNumbers   = regexp.MustCompile(`\b\d[\d.]*(?:[eE][+-]?\d+)?[a-z]*\b`) // numbers and durations (5m, 1e-3)
	promIdents    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promKeywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// promMetricNames returns the metric names an expression selects.
func promMetricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGroupings.ReplaceAllString(s, " ")
	s = promNumbers.ReplaceAllString(s, " ")
	var out []string
	for _, m := range promIdents.FindAllStringSubmatch(s, -1) {
		name := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[0]), "("))
		if m[1] != "" || promKeywords[strings.ToLower(name)] {
			continue // a function, or a keyword
		}
		out = append(out, name)
	}
	return out
}

// TestPromMetricNames pins the extraction the dashboard test relies on.
func TestPromMetricNames(t *testing.T) {
	tests := []struct{ expr, want string }{
		{`histogram_quantile(0.99, sum by (le, type) (rate(a_bucket{instance=~"x{1}"}[5m])))`, "a_bucket"},
		{`time() - max(b{i="1"})`, "b"},
		{`count(c == 0) or vector(0)`, "c"},
		{`d > 0 and on (x, y) e == 0`, "d e"},
		{`sum without (kind) (rate(f[$__rate_interval])) offset 5m`, "f"},
	}
	for _, tt := range tests {
		if got := strings.Join(promMetricNames(tt.expr), " "); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// TestGrafanaDashboard checks docs/grafana/lvsprobe.json: valid JSON,
// every panel with a query, every metric an expression selects among the
// families lvsprobe registers, and every expression valid PromQL
// (promtool check rules).
func TestGrafanaDashboard(t *testing.T) {
	exprs := dashboardExprs(t)
	reg, _, _ := docRegistry(t)
	families := map[string]bool{}
	for _, m := range describe(reg) {
		families[m.name] = true
	}
	exists := func(name string) bool {
		if families[name] {
			return true
		}
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(name, suf); ok && families[base] {
				return true
			}
		}
		return false
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for where, expr := range exprs {
		names := promMetricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, name := range names {
			if !exists(name) {
				t.Errorf("%s: %s is not a metric lvsprobe registers (expr %q)", where, name, expr)
			}
		}
		concrete := strings.NewReplacer("$instance", ".*", "$__rate_interval", "5m").Replace(expr)
		q, _ := json.Marshal(concrete) // a JSON string is a YAML string
		fmt.Fprintf(&rules, "      - record: dashboard:expr_%d\n        expr: %s\n", n, q)
		n++
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		testenv.SkipOrFail(t, "promtool not installed (scripts/install-deps): the expressions' syntax is unchecked")
		return
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	writeFile(t, path, rules.String())
	if out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s\n%s", err, out, rules.String())
	}
}
