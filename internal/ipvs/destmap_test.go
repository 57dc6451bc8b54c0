package ipvs

import (
	"net/netip"
	"testing"
	"unsafe"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestDestMapLayout guards the size of a stored destination: two tables
// of 10,000 at 10,000 real servers (docs/benchmarks.md §8.9).
func TestDestMapLayout(t *testing.T) {
	if got, max := unsafe.Sizeof(destVal{}), uintptr(24); got > max {
		t.Errorf("destVal is %d bytes, more than its budget of %d", got, max)
	}
}

// TestDestMapRoundTrip: what put stores, get and all give back whole.
func TestDestMapRoundTrip(t *testing.T) {
	tun := &config.Tunnel{Type: "gue", Port: 6080, Checksum: "csum"}
	for _, d := range []Destination{
		{Addr: netip.MustParseAddr("198.18.1.1"), Port: 80, Weight: 1, Method: config.NAT},
		{Addr: netip.MustParseAddr("198.18.1.2"), Port: 0, Weight: 0, Method: config.DR, UpperThreshold: 100, LowerThreshold: 10},
		{Addr: netip.MustParseAddr("2001:db8::1"), Port: 443, Weight: 65535, Method: config.TUN, Tunnel: tun},
		{Addr: netip.MustParseAddr("198.18.1.3"), Port: 8080, Weight: 3, Method: "fwd-1"},
		{Addr: netip.MustParseAddr("198.18.1.4"), Port: 8080, Weight: 3, Method: "fwd-7"},
		{Addr: netip.MustParseAddr("198.18.1.5"), Port: 8080, Weight: 3, Method: "fwd-1"},
		{Addr: netip.MustParseAddr("198.18.1.6"), Port: 1, Weight: 2, Method: ""},
	} {
		m := destMap{}
		m.put(d)
		got, ok := m.get(keyOf(d))
		if !ok || got != d {
			t.Errorf("put %+v, get %+v (found %v)", d, got, ok)
		}
		n := 0
		for k, v := range m.all() {
			n++
			if k != keyOf(d) || v != d {
				t.Errorf("all: %v %+v, want %v %+v", k, v, keyOf(d), d)
			}
		}
		if n != 1 {
			t.Errorf("all yielded %d, want 1", n)
		}
	}
	if _, ok := (destMap{}).get(destKey{Addr: netip.MustParseAddr("198.18.1.1"), Port: 80}); ok {
		t.Error("get found a destination in an empty map")
	}
}
