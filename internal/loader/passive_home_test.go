package loader

import (
	"net/netip"
	"testing"
)

// TestRSSlotsHome: a home slot is taken when free and never used, or
// freed in an earlier round; never when taken or freed in this round.
// Slots skipped on the way to a home are free for add, which passes over
// free-list entries taken since.
func TestRSSlotsHome(t *testing.T) {
	ap := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, 1}), uint16(i))
	}
	key := func(i int) [rsKeySize]byte { return encodeRSKey(ap(i)) }
	var s rsSlots
	s.round = 1
	steps := []struct {
		name string
		do   func() (int32, bool)
		want int32 // -1: refused
	}{
		{"home beyond the end", func() (int32, bool) { return 3, s.addHome(key(1), ap(1), 3, 8) }, 3},
		{"home taken", func() (int32, bool) { return 3, s.addHome(key(2), ap(2), 3, 8) }, -1},
		{"home at the limit", func() (int32, bool) { return 8, s.addHome(key(2), ap(2), 8, 8) }, -1},
		{"home skipped on the way, free", func() (int32, bool) { return 1, s.addHome(key(2), ap(2), 1, 8) }, 1},
		{"add takes the oldest free slot not taken since", func() (int32, bool) { return s.add(key(3), ap(3), 8) }, 0},
		{"add passes over slot 1 (taken)", func() (int32, bool) { return s.add(key(4), ap(4), 8) }, 2},
		{"add grows", func() (int32, bool) { return s.add(key(5), ap(5), 8) }, 4},
		{"freed this round: refused", func() (int32, bool) { s.remove(key(1)); return 3, s.addHome(key(6), ap(6), 3, 8) }, -1},
		{"freed in an earlier round: taken", func() (int32, bool) { s.round++; return 3, s.addHome(key(6), ap(6), 3, 8) }, 3},
		{"add passes over slot 3 (taken again)", func() (int32, bool) { return s.add(key(7), ap(7), 8) }, 5},
	}
	for _, st := range steps {
		i, ok := st.do()
		if got := map[bool]int32{true: i, false: -1}[ok]; got != st.want {
			t.Fatalf("%s: slot %d, want %d", st.name, got, st.want)
		}
	}
	for k, i := range s.byKey {
		if s.gen[i] == 0 || s.byKey[encodeRSKey(s.ap[i])] != i {
			t.Errorf("slot %d of %x: ap %s gen %d", i, k, s.ap[i], s.gen[i])
		}
	}
}

// TestPassiveHomeSlots: every real server whose home slot no other took
// first is there, the rest elsewhere; the programs count each in its
// own slot either way (home line, or the endpoint table), across a
// reload that frees and reuses slots.
func TestPassiveHomeSlots(t *testing.T) {
	const capacity = 64
	p := mustLoadPassive(t, PassiveOptions{Capacity: capacity, NoTracepoints: true, HandshakeSample: 1})
	egress, ingress := p.Programs()
	rsN := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 9, 10}), uint16(8000+i))
	}
	port := uint16(1000)
	for _, round := range []struct {
		name  string
		first int
		n     int
	}{{"first", 0, 48}, {"reload", 24, 40}} {
		var rss []netip.AddrPort
		for i := round.first; i < round.first+round.n; i++ {
			rss = append(rss, rsN(i))
		}
		before := map[netip.AddrPort]ClientCounters{}
		if round.name != "first" {
			c, _, err := p.Counters()
			if err != nil {
				t.Fatal(err)
			}
			before = c
		}
		if err := p.SetRealServers(rss); err != nil {
			t.Fatalf("%s: %v", round.name, err)
		}
		homes := map[int32]bool{}
		atHome, atFirst := 0, 0
		p.mu.Lock()
		for _, ap := range rss {
			k := encodeRSKey(ap)
			h := rsHome(p.ep.hash(&k), capacity)
			homes[h] = true
			if p.slots.byKey[k] == h {
				atFirst++
			}
			if isHome(p, k) {
				atHome++
			}
		}
		p.mu.Unlock()
		t.Logf("%s: %d of %d real servers at home (%d at the first)", round.name, atHome, len(rss), atFirst)
		if round.name == "first" && atFirst != len(homes) {
			t.Errorf("%s: %d at their first home, want %d (one for every distinct first home)", round.name, atFirst, len(homes))
		}
		if atHome == 0 || atHome == len(rss) {
			t.Errorf("%s: %d of %d at home: the test needs both kinds", round.name, atHome, len(rss))
		}
		for _, rs := range rss {
			port++
			c := netip.AddrPortFrom(client4.Addr(), port)
			run(t, egress, pkt{src: c, dst: rs, flags: fSYN}.build())
			run(t, ingress, pkt{src: rs, dst: c, flags: fSYNACK}.build())
			run(t, ingress, pkt{src: rs, dst: c, flags: fRST, seq: 7}.build()) // a connection's reset
			run(t, ingress, pkt{src: rs, dst: c, flags: fSYNACK}.build())      // untracked now
		}
		got, _, err := p.Counters()
		if err != nil {
			t.Fatal(err)
		}
		for _, rs := range rss {
			g, b := got[rs], before[rs]
			if g.SYNs-b.SYNs != 1 || g.SYNACKs-b.SYNACKs != 2 || g.Resets-b.Resets != 1 || g.Latency.Count()-b.Latency.Count() != 1 {
				t.Errorf("%s: %s counted %+v after %+v, want one SYN, two SYN-ACKs (one timed), one RST more", round.name, rs, g, b)
			}
		}
	}
	// Out of the endpoint table, a real server at home is still found
	// (by its home line), one elsewhere no longer is.
	seen := map[bool]bool{}
	for i := 24; i < 64 && len(seen) < 2; i++ {
		rs := rsN(i)
		k := encodeRSKey(rs)
		p.mu.Lock()
		home := isHome(p, k)
		_, err := p.ep.remove(k)
		p.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if seen[home] {
			continue
		}
		seen[home] = true
		was := counters(t, p, rs).SYNs
		port++
		run(t, egress, pkt{src: netip.AddrPortFrom(client4.Addr(), port), dst: rs, flags: fSYN}.build())
		if got, want := counters(t, p, rs).SYNs-was, map[bool]uint64{true: 1, false: 0}[home]; got != want {
			t.Errorf("at home %v, out of the endpoint table: %d SYNs counted, want %d", home, got, want)
		}
	}
	if len(seen) != 2 {
		t.Errorf("found %d kinds of real server, want both", len(seen))
	}
}

// isHome reports whether real server k sits at one of its home slots.
// Under p.mu.
func isHome(p *Passive, k [rsKeySize]byte) bool {
	h, slot := p.ep.hash(&k), p.slots.byKey[k]
	return slot == rsHome(h, uint32(p.opts.Capacity)) || slot == rsHome2(h, uint32(p.opts.Capacity))
}
