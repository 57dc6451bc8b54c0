package loader

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

// pollWith runs one [Passive.poll] with pp as Run's state and returns the
// batch of deltas it sent (a copy, Intervals zeroed; nil when none).
func pollWith(tb testing.TB, p *Passive, pp *passivePoller) []Delta {
	tb.Helper()
	p.poller = *pp
	err := p.poll()
	*pp = p.poller
	if err != nil {
		tb.Fatalf("poll: %v", err)
	}
	select {
	case ds := <-p.deltas:
		ds = slices.Clone(ds)
		for i := range ds {
			ds[i].Interval = 0 // wall time between two polls, not the counters
		}
		return ds
	default:
		return nil
	}
}

// batchPoller is a poller that reads rs_stats with BatchLookup, as before
// the memory mapping.
func batchPoller() *passivePoller {
	return &passivePoller{cbuf: rsStatsBuf{mapped: mapRefused}}
}

// TestPassivePollMapped: a poll through rs_stats' memory mapping returns
// the same deltas as one through BatchLookup, on counters written into the
// loaded map and on packets run through the loaded programs, across real
// servers removed and added (freed slots reused under new generations);
// and it does read through the mapping.
func TestPassivePollMapped(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity int
		n        int  // real servers observed
		own      bool // Run reads the director's own connections too
	}{
		{"1 of 16384", 0, 1, false},
		{"100 of 16384", 0, 100, false},
		{"100 of 16384 with own", 0, 100, true},
		{"1000 of 1024", 1024, 1000, false},
		{"3000 of 65536", 65536, 3000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustLoadPassive(t, PassiveOptions{Capacity: tc.capacity, ClientDeltasOnly: !tc.own, NoTracepoints: !tc.own})
			rss := benchRealServers(tc.n)
			if err := p.SetRealServers(rss); err != nil {
				t.Fatal(err)
			}
			mapped, batch := &passivePoller{}, batchPoller()
			step := func(what string) {
				t.Helper()
				based := mapped.based
				dm, db := pollWith(t, p, mapped), pollWith(t, p, batch)
				if !reflect.DeepEqual(dm, db) {
					t.Fatalf("%s: mapped read gave %d deltas, BatchLookup %d; first differing:\n%s", what, len(dm), len(db), firstDiff(dm, db))
				}
				if based && len(dm) == 0 {
					t.Fatalf("%s: no deltas: the step changed nothing", what)
				}
			}
			fillPassiveStats(t, p, 1)
			step("baseline")
			fillPassiveStats(t, p, 2)
			step("counters written")

			egress, ingress := p.Programs()
			for _, rs := range []netip.AddrPort{rss[0], rss[len(rss)-1]} {
				run(t, egress, pkt{src: client4, dst: rs, flags: fSYN}.build())
				run(t, ingress, pkt{src: rs, dst: client4, flags: fSYNACK}.build())
				run(t, egress, pkt{src: client4, dst: rs, flags: fSYN, seq: 5000}.build())
				run(t, ingress, pkt{src: rs, dst: client4, flags: fRST | fACK}.build())
			}
			step("packets")

			// Every other real server out, as many new ones in: the new
			// ones take freed slots, whose generation changes.
			var next []netip.AddrPort
			for i, rs := range rss {
				if i%2 == 0 {
					next = append(next, rs)
				}
			}
			next = append(next, benchRealServers(tc.n + tc.n/2)[tc.n:]...)
			if err := p.SetRealServers(next); err != nil {
				t.Fatal(err)
			}
			fillPassiveStats(t, p, 100) // above the counts the packets made
			step("real servers replaced")

			if mapped.cbuf.mapped != mapMapped {
				t.Errorf("rs_stats not read through its mapping (state %d)", mapped.cbuf.mapped)
			}
			if batch.cbuf.mapped != mapRefused || batch.cbuf.mem != nil {
				t.Errorf("the BatchLookup poller mapped rs_stats")
			}
		})
	}
}

// firstDiff describes the first difference between two batches.
func firstDiff(a, b []Delta) string {
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || !reflect.DeepEqual(a[i], b[i]) {
			var x, y any
			if i < len(a) {
				x = a[i]
			}
			if i < len(b) {
				y = b[i]
			}
			return fmt.Sprintf("[%d] mapped %+v\n[%d] batch  %+v", i, x, i, y)
		}
	}
	return "none"
}

// TestPassiveCountersMapped: Counters reads rs_stats through the mapping
// and gives what a BatchLookup read gives.
func TestPassiveCountersMapped(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true})
	if err := p.SetRealServers(benchRealServers(300)); err != nil {
		t.Fatal(err)
	}
	fillPassiveStats(t, p, 9)
	got, _, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.AddrPort]ClientCounters{}
	b := rsStatsBuf{mapped: mapRefused}
	if err := readBatches(p, p.tc.RsStats, &b, bySlot, func(n int) {
		for i := range n {
			if b.slot[i] >= 0 {
				want[b.ap[i]] = clientCounters(&b.vals[i])
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 300 || !reflect.DeepEqual(got, want) {
		t.Errorf("Counters: %d real servers, BatchLookup %d, equal %v", len(got), len(want), reflect.DeepEqual(got, want))
	}
	var m rsStatsBuf
	if err := readBatches(p, p.tc.RsStats, &m, bySlot, func(int) {}); err != nil || m.mapped != mapMapped {
		t.Errorf("rs_stats not mapped: state %d, %v", m.mapped, err)
	}
}

// BenchmarkPassivePoll is one poll of Run (ClientDeltasOnly, as lvsprobe
// runs it) with nothing changed, at n real servers in a map of capacity
// slots, reading rs_stats with BatchLookup ("batch", every entry) or
// through its memory mapping ("mmap", the slots in use); and one
// BatchLookup read of own_targets ("own", the metrics' read of the
// director's own connections).
func BenchmarkPassivePoll(b *testing.B) {
	for _, capacity := range []int{16384, 65536} {
		for _, n := range []int{100, 10000} {
			p := mustLoadPassive(b, PassiveOptions{Capacity: capacity, ClientDeltasOnly: true})
			if err := p.SetRealServers(benchRealServers(n)); err != nil {
				b.Fatal(err)
			}
			fillPassiveStats(b, p, 1)
			for _, path := range []string{"batch", "mmap"} {
				b.Run(fmt.Sprintf("%s/%d-of-%d", path, n, capacity), func(b *testing.B) {
					pp := &passivePoller{}
					if path == "batch" {
						pp = batchPoller()
					}
					pollWith(b, p, pp) // the baseline
					pollWith(b, p, pp)
					b.ReportAllocs()
					cpu0 := cpuTime(b)
					for b.Loop() {
						if ds := pollWith(b, p, pp); ds != nil {
							b.Fatalf("%d deltas with nothing changed", len(ds))
						}
					}
					b.ReportMetric(float64(cpuTime(b)-cpu0)/1e3/float64(b.N), "cpu-µs/op")
					if want := map[string]mapState{"batch": mapRefused, "mmap": mapMapped}[path]; pp.cbuf.mapped != want {
						b.Fatalf("read state %d, want %d", pp.cbuf.mapped, want)
					}
				})
			}
			b.Run(fmt.Sprintf("own/%d-of-%d", n, capacity), func(b *testing.B) {
				var ob batchBuf[passiveTracePassiveRsKey, passiveTracePassiveOwnStats]
				p.mu.Lock()
				want := len(p.slots.byKey) // benchRealServers may repeat rs4
				p.mu.Unlock()
				b.ReportAllocs()
				cpu0 := cpuTime(b)
				for b.Loop() {
					got := 0
					if err := readBatches(p, p.trace.OwnTargets, &ob, byRSKey(ownKey), func(k int) { got += k }); err != nil {
						b.Fatal(err)
					}
					if got != want {
						b.Fatalf("%d own entries, want %d", got, want)
					}
				}
				b.ReportMetric(float64(cpuTime(b)-cpu0)/1e3/float64(b.N), "cpu-µs/op")
			})
			p.Close()
		}
	}
}
