package prober

import (
	"net/netip"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestBuildIndex: the endpoint index finds every unit connecting to an
// endpoint (several share one), none without an endpoint, and a rebuild
// (a reload) drops the units no longer in the plan from the chains.
func TestBuildIndex(t *testing.T) {
	a := netip.MustParseAddrPort("198.18.1.2:80")
	b := netip.MustParseAddrPort("198.18.1.3:443")
	block := func(ap netip.AddrPort) *config.Checker {
		return &config.Checker{Type: config.TCPCheck, ConnectIP: ap.Addr(), ConnectPort: ap.Port()}
	}
	units := map[unitID]*unit{
		"a1": {block: block(a)}, "a2": {block: block(a)}, "a3": {block: block(a)},
		"b1":   {block: block(b)},
		"none": {block: &config.Checker{Type: config.MiscCheck}},
	}
	chain := func(ix *epIndex, ap netip.AddrPort) map[*unit]bool {
		got := map[*unit]bool{}
		for u := ix.units[ap]; u != nil; u = u.epNext {
			if got[u] {
				t.Fatalf("%v: a loop in the chain", ap)
			}
			got[u] = true
		}
		return got
	}
	ix := buildIndex(&plan{units: units})
	if len(ix.units) != 2 {
		t.Fatalf("%d endpoints indexed, want 2", len(ix.units))
	}
	for _, tt := range []struct {
		ap   netip.AddrPort
		want []unitID
	}{{a, []unitID{"a1", "a2", "a3"}}, {b, []unitID{"b1"}}} {
		got := chain(ix, tt.ap)
		if len(got) != len(tt.want) {
			t.Errorf("%v: %d units, want %d", tt.ap, len(got), len(tt.want))
		}
		for _, id := range tt.want {
			if !got[units[id]] {
				t.Errorf("%v: %s missing", tt.ap, id)
			}
		}
	}
	delete(units, "a2")
	ix = buildIndex(&plan{units: units})
	if got := chain(ix, a); len(got) != 2 || !got[units["a1"]] || !got[units["a3"]] {
		t.Errorf("after a reload: %d units on %v, want a1 and a3", len(got), a)
	}
}
