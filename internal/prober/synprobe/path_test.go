package synprobe

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// TestPathsShared: targets on one route share one path (source address,
// interface, next hop, frame), re-adding a target keeps it, and a path is
// forgotten with its last target. Has, Len and Targets see what was added.
func TestPathsShared(t *testing.T) {
	n := testnet.New(t, testnet.Options{RealServers: 1, ExtraAddrs: 1})
	rs := n.RealServers[0]
	p, _ := newTestProber(t, n, Config{Interval: time.Second, PortLo: 62000, PortHi: 62999})
	var added []netip.AddrPort
	for _, a := range rs.Addrs {
		for port := uint16(8000); port < 8003; port++ {
			ap := netip.AddrPortFrom(a, port)
			if err := p.Add(ap, 0); err != nil {
				t.Fatal(err)
			}
			added = append(added, ap)
		}
	}
	if err := p.Add(added[0], 0); err != nil { // again: the same route
		t.Fatal(err)
	}
	paths := func() (n, users int, byAddr map[netip.Addr]*path) {
		p.mu.Lock()
		defer p.mu.Unlock()
		byAddr = map[netip.Addr]*path{}
		for _, tg := range p.targets {
			if pa, ok := byAddr[tg.addr.Addr()]; ok && pa != tg.path {
				t.Errorf("%v: its own path, not its address's", tg.addr)
			}
			byAddr[tg.addr.Addr()] = tg.path
		}
		for _, pa := range p.paths {
			users += pa.users
		}
		return len(p.paths), users, byAddr
	}
	if p.Len() != len(added) || len(p.Targets()) != len(added) {
		t.Fatalf("Len %d, Targets %d, want %d", p.Len(), len(p.Targets()), len(added))
	}
	mapped := netip.AddrPortFrom(netip.AddrFrom16(added[0].Addr().As16()), added[0].Port())
	if !p.Has(added[0]) || !p.Has(mapped) || p.Has(netip.AddrPortFrom(added[0].Addr(), 1)) {
		t.Fatalf("Has: %v %v (v4-mapped) true, port 1 false: wrong", added[0], mapped)
	}
	for _, a := range p.Targets() {
		if !slices.Contains(added, a) {
			t.Errorf("Targets: %v not added", a)
		}
	}
	np, users, byAddr := paths()
	if users != len(added) || np == 0 || np > len(rs.Addrs) {
		t.Fatalf("%d paths with %d users for %d targets on %d addresses", np, users, len(added), len(rs.Addrs))
	}
	for a, pa := range byAddr {
		if pa.local != n.RealServers[0].Director || pa.ifindex == 0 {
			t.Errorf("%v: path %+v", a, pa)
		}
	}
	for _, ap := range added {
		p.Remove(ap)
	}
	if np, users, _ := paths(); np != 0 || users != 0 || p.Len() != 0 {
		t.Fatalf("after removing every target: %d paths, %d users", np, users)
	}
}
