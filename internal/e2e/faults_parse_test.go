package e2e

import (
	"bufio"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]float64
		err      bool
	}{
		{name: "samples", in: "# HELP x y\n# TYPE x counter\nx 3\n" +
			`lvsprobe_ipvs_operations_total{kind="add_service"} 2` + "\n\ngo_gc 1.5e+06\n",
			want: map[string]float64{"x": 3, `lvsprobe_ipvs_operations_total{kind="add_service"}`: 2, "go_gc": 1.5e6}},
		{name: "no value", in: "x\n", err: true},
		{name: "bad value", in: "x y\n", err: true},
		{name: "empty", in: "", want: map[string]float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMetrics(bufio.NewScanner(strings.NewReader(tc.in)))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %t", err, tc.err)
			}
			if !tc.err && !maps.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzParseMetrics checks that parsing never panics and that parsed
// samples printed back parse to themselves.
func FuzzParseMetrics(f *testing.F) {
	f.Add("x 1\n# c\ny{a=\"b c\"} 2.5\n")
	f.Add("lvsprobe_passive_available 0\n")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := parseMetrics(bufio.NewScanner(strings.NewReader(in)))
		if err != nil {
			return
		}
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if strings.ContainsAny(k, "\n\r") || k == "" || k[0] == '#' {
				return // not a sample line once printed alone
			}
			fmt.Fprintf(&b, "%s %v\n", k, m[k])
		}
		again, err := parseMetrics(bufio.NewScanner(strings.NewReader(b.String())))
		if err != nil {
			t.Fatalf("round trip of %q: %v", in, err)
		}
		if !maps.EqualFunc(again, m, func(a, b float64) bool { return a == b || (a != a && b != b) }) {
			t.Fatalf("round trip of %q: %v, want %v", in, again, m)
		}
	})
}

// FuzzParseWrk checks that parsing wrk's report never panics and that
// the failures it counts are never negative.
func FuzzParseWrk(f *testing.F) {
	f.Add("  980 requests in 20.00s, 240KB read\n  Socket errors: connect 12, read 3, write 0, timeout 1\n  Non-2xx or 3xx responses: 2\n")
	f.Add("unable to connect\n")
	f.Fuzz(func(t *testing.T, out string) {
		r, err := parseWrk(out)
		if err != nil {
			return
		}
		if r.requests < 0 || r.lost() < 0 {
			t.Fatalf("%q: negative counts %+v", out, r)
		}
	})
}
