package loader

import (
	"maps"
	"net/netip"
	"testing"
)

// TestPassiveMappedRead: the counters read from the mapped rs_stats are
// those batch lookups read, for real servers spread over the slots.
func TestPassiveMappedRead(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{Capacity: 256, NoTracepoints: true})
	if p.rsMem == nil {
		t.Fatal("rs_stats not mapped")
	}
	var rss []netip.AddrPort
	for i := range 100 {
		rss = append(rss, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 9, byte(i)}), 80))
	}
	if err := p.SetRealServers(rss); err != nil {
		t.Fatal(err)
	}
	egress, ingress := p.Programs()
	port := uint16(1000)
	for i, rs := range rss {
		for range i % 5 {
			port++
			c := netip.AddrPortFrom(client4.Addr(), port)
			run(t, egress, pkt{src: c, dst: rs, flags: fSYN}.build())
			run(t, ingress, pkt{src: rs, dst: c, flags: fSYNACK}.build())
		}
	}
	mapped, _, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	mem := p.rsMem
	p.rsMem = nil
	p.mu.Unlock()
	looked, _, err := p.Counters()
	p.mu.Lock()
	p.rsMem = mem
	p.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if len(mapped) != len(rss) {
		t.Errorf("mapped read: %d real servers, want %d", len(mapped), len(rss))
	}
	for i, rs := range rss {
		if got := mapped[rs].SYNs; got != uint64(i%5) {
			t.Errorf("%s: %d SYNs, want %d", rs, got, i%5)
		}
	}
	if !maps.EqualFunc(mapped, looked, func(a, b ClientCounters) bool {
		return a.SYNs == b.SYNs && a.SYNACKs == b.SYNACKs && a.Latency == b.Latency && a.LatencySum == b.LatencySum
	}) {
		t.Errorf("mapped read %v, batch lookups %v", mapped, looked)
	}
}
