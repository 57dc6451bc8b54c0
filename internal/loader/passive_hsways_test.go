package loader

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// The in-flight handshakes live in eight ways of each real server's
// rs_stats entry (bpf/headers/passive.h, struct passive_hs). These tests
// check what that layout could get wrong: two clients of one real server
// in one line, a ninth handshake with every way in flight, a
// retransmitted SYN counted once and kept in its way, a SYN-ACK with no
// way, and the windows after which a way is free again.

// hsWays is PASSIVE_HS_WAYS.
const hsWays = 8

// hsEntry returns the rs_stats slot of rs and its entry.
func hsEntry(tb testing.TB, p *Passive, rs netip.AddrPort) (uint32, passivePassiveRsStats) {
	tb.Helper()
	k := encodeRSKey(rs)
	p.mu.Lock()
	slot, ok := p.slots.byKey[k]
	p.mu.Unlock()
	if !ok {
		tb.Fatalf("%s has no slot", rs)
	}
	var v passivePassiveRsStats
	if err := p.tc.RsStats.Lookup(uint32(slot), &v); err != nil {
		tb.Fatal(err)
	}
	if rsKeyOf(&v.Key.Addr, v.Key.Port, v.Key.Proto, v.Key.Family) != k {
		tb.Fatalf("slot %d holds another key", slot)
	}
	return uint32(slot), v
}

// inFlight counts the ways that hold a handshake (a tag), live or not.
func inFlight(v passivePassiveRsStats) int {
	n := 0
	for _, h := range v.Hs {
		if h.Tag != 0 {
			n++
		}
	}
	return n
}

// hsLoad loads the observer with one real server per family and returns
// its programs and a client port maker for fam.
func hsLoad(t *testing.T) *Passive {
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, HandshakeSample: 1})
	if err := p.SetRealServers([]netip.AddrPort{rs4, rs6}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPassiveHandshakeWays(t *testing.T) {
	for _, fam := range []struct {
		name       string
		rs, client netip.AddrPort
	}{{"ipv4", rs4, client4}, {"ipv6", rs6, client6}} {
		c := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(fam.client.Addr(), port) }
		syn := func(port uint16) []byte { return pkt{src: c(port), dst: fam.rs, flags: fSYN}.build() }
		synack := func(port uint16) []byte { return pkt{src: fam.rs, dst: c(port), flags: fSYNACK}.build() }
		refusal := func(port uint16) []byte { return pkt{src: fam.rs, dst: c(port), flags: fRST | fACK}.build() }

		// Two clients of one real server share its line: both are
		// tracked and timed, each answer clears its own way only.
		t.Run(fam.name+"/two clients", func(t *testing.T) {
			p := hsLoad(t)
			eg, in := p.Programs()
			run(t, eg, syn(1))
			run(t, eg, syn(2))
			if _, v := hsEntry(t, p, fam.rs); inFlight(v) != 2 {
				t.Fatalf("%d ways in flight after two SYNs, want 2", inFlight(v))
			}
			run(t, in, synack(2))
			if _, v := hsEntry(t, p, fam.rs); inFlight(v) != 1 {
				t.Fatalf("%d ways in flight after one answer, want 1", inFlight(v))
			}
			run(t, in, refusal(1))
			got := counters(t, p, fam.rs)
			if got.SYNs != 2 || got.SYNACKs != 1 || got.Refused != 1 || got.Latency.Count() != 1 || got.SYNRetransmits != 0 {
				t.Errorf("counters %+v: want 2 SYNs, 1 SYN-ACK timed, 1 refused, no retransmission", got)
			}
			if _, v := hsEntry(t, p, fam.rs); inFlight(v) != 0 {
				t.Errorf("%d ways in flight after both answers, want 0", inFlight(v))
			}
			if st, err := p.Stats(); err != nil || st.HandshakeFull != 0 || st.HandshakeMissed != 0 {
				t.Errorf("stats %+v, %v: want nothing full or missed", st, err)
			}
		})

		// Nine handshakes in flight: eight are tracked, the ninth is
		// counted full and its SYN-ACK missed; an answer frees a way
		// for the next SYN.
		t.Run(fam.name+"/ninth", func(t *testing.T) {
			p := hsLoad(t)
			eg, in := p.Programs()
			for i := range hsWays + 1 {
				run(t, eg, syn(uint16(100+i)))
			}
			st, err := p.Stats()
			if err != nil || st.HandshakeFull != 1 {
				t.Fatalf("stats %+v, %v: want 1 SYN not tracked", st, err)
			}
			// The ninth again: not tracked, so not a retransmission.
			run(t, eg, syn(uint16(100+hsWays)))
			for i := range hsWays + 1 {
				run(t, in, synack(uint16(100+i)))
			}
			got := counters(t, p, fam.rs)
			if got.SYNs != hsWays+2 || got.SYNRetransmits != 0 || got.SYNACKs != hsWays+1 || got.Latency.Count() != hsWays {
				t.Errorf("counters %+v: want %d SYNs, no retransmission, %d SYN-ACKs, %d timed", got, hsWays+2, hsWays+1, hsWays)
			}
			if st, _ := p.Stats(); st.HandshakeFull != 2 || st.HandshakeMissed != 1 {
				t.Errorf("stats %+v: want 2 full, 1 missed", st)
			}
			run(t, eg, syn(200))
			run(t, in, synack(200))
			if got := counters(t, p, fam.rs); got.Latency.Count() != hsWays+1 {
				t.Errorf("after a way was freed: %d timed, want %d", got.Latency.Count(), hsWays+1)
			}
		})

		// A retransmitted SYN is counted once per retransmission and
		// stays in its way: eight clients sending twice and three
		// times fill no more than eight ways, nothing is full, and
		// none is timed (Karn).
		t.Run(fam.name+"/retransmitted", func(t *testing.T) {
			p := hsLoad(t)
			eg, in := p.Programs()
			for i := range hsWays {
				run(t, eg, syn(uint16(300+i)))
			}
			for i := range hsWays {
				run(t, eg, syn(uint16(300+i)))
			}
			run(t, eg, syn(300))
			if _, v := hsEntry(t, p, fam.rs); inFlight(v) != hsWays {
				t.Fatalf("%d ways in flight, want %d", inFlight(v), hsWays)
			}
			got := counters(t, p, fam.rs)
			if got.SYNs != 2*hsWays+1 || got.SYNRetransmits != hsWays+1 {
				t.Fatalf("counters %+v: want %d SYNs, %d retransmissions", got, 2*hsWays+1, hsWays+1)
			}
			for i := range hsWays {
				run(t, in, synack(uint16(300+i)))
			}
			got = counters(t, p, fam.rs)
			if got.SYNACKs != hsWays || got.Latency.Count() != 0 {
				t.Errorf("counters %+v: want %d SYN-ACKs, none timed", got, hsWays)
			}
			if st, err := p.Stats(); err != nil || st.HandshakeFull != 0 || st.HandshakeMissed != 0 {
				t.Errorf("stats %+v, %v: want nothing full or missed", st, err)
			}
		})

		// A SYN-ACK with no tracked SYN, or answering twice: counted,
		// missed, not timed; a refusal of no tracked SYN is a reset,
		// not a refusal.
		t.Run(fam.name+"/no way", func(t *testing.T) {
			p := hsLoad(t)
			eg, in := p.Programs()
			run(t, in, synack(400))
			run(t, eg, syn(401))
			run(t, in, synack(401))
			run(t, in, synack(401))
			run(t, in, refusal(402))
			got := counters(t, p, fam.rs)
			if got.SYNACKs != 3 || got.Latency.Count() != 1 || got.Resets != 1 || got.Refused != 0 {
				t.Errorf("counters %+v: want 3 SYN-ACKs, 1 timed, 1 reset, no refusal", got)
			}
			if st, err := p.Stats(); err != nil || st.HandshakeMissed != 2 {
				t.Errorf("stats %+v, %v: want 2 missed", st, err)
			}
		})

		// The windows: a way whose first SYN is 4 s old is free unless
		// its SYN was retransmitted (10 s); one 11 s old is free.
		t.Run(fam.name+"/windows", func(t *testing.T) {
			p := hsLoad(t)
			eg, _ := p.Programs()
			for i := range hsWays {
				run(t, eg, syn(uint16(500+i)))
			}
			run(t, eg, syn(500)) // retransmitted: the 10 s window
			age := func(sec int64) {
				slot, v := hsEntry(t, p, fam.rs)
				var ts unix.Timespec
				if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
					t.Fatal(err)
				}
				now := uint32(uint64(ts.Nano()) >> 8)
				for i := range v.Hs {
					v.Hs[i].T = now - uint32(uint64(sec)*1e9>>8)
				}
				if err := p.tc.RsStats.Put(slot, &v); err != nil {
					t.Fatal(err)
				}
			}
			age(4)
			run(t, eg, syn(501)) // its way expired: a new handshake
			run(t, eg, syn(500)) // still in flight: a retransmission
			got := counters(t, p, fam.rs)
			if got.SYNRetransmits != 2 {
				t.Errorf("4 s on: %d retransmissions, want 2 (the retransmitted handshake's)", got.SYNRetransmits)
			}
			age(11)
			run(t, eg, syn(500))
			if got := counters(t, p, fam.rs); got.SYNRetransmits != 2 {
				t.Errorf("11 s on: %d retransmissions, want still 2", got.SYNRetransmits)
			}
			if st, err := p.Stats(); err != nil || st.HandshakeFull != 0 {
				t.Errorf("stats %+v, %v: want nothing full", st, err)
			}
		})
	}
}
