package metricfam

import (
	"net/http"
	"testing"
)

// FuzzContentEncoding checks that any Accept-Encoding header gives one
// of the three answers and that the parsed weights are in [0, 1].
func FuzzContentEncoding(f *testing.F) {
	for _, s := range []string{"", "gzip", "gzip;q=0.5, identity;q=0.7", "*;q=0", "identity;q=0, gzip;q=0", "gzip;level=1", "br,,gzip ; q = 1", "gzip;q=1.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{"Accept-Encoding": {v}}
		switch e := contentEncoding(h); e {
		case "identity", "gzip", "":
		default:
			t.Fatalf("%q: %q", v, e)
		}
		for _, s := range acceptSpecs([]string{v}) {
			if s.q < 0 || s.q > 1 || s.coding == "" {
				t.Fatalf("%q: spec %+v", v, s)
			}
		}
	})
}
