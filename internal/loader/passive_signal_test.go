package loader

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

func TestHistogramQuantile(t *testing.T) {
	tests := []struct {
		name string
		fill map[int]uint64
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one bucket", map[int]uint64{3: 10}, 0.99, 16 * time.Microsecond},
		{"median of two", map[int]uint64{0: 50, 10: 50}, 0.5, 2 * time.Microsecond},
		{"p51 of two", map[int]uint64{0: 50, 10: 50}, 0.51, 2048 * time.Microsecond},
		{"q=0 is the lowest", map[int]uint64{5: 1, 9: 1}, 0, 64 * time.Microsecond},
		{"q=1 is the highest", map[int]uint64{5: 1, 27: 1}, 1, BucketUpper(27)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for b, n := range tt.fill {
				h[b] = n
			}
			if got := h.Quantile(tt.q); got != tt.want {
				t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

// TestPollerDeltas: the poller's baseline by slot yields a Delta for each
// real server whose counters changed (clients and own joined in one), none
// for the unchanged, counts a new real server (or a slot that changed
// hands) from zero, never wraps a counter that went back, and alternates
// between two batches.
func TestPollerDeltas(t *testing.T) {
	a, b, c := netip.MustParseAddrPort("198.18.1.2:80"), netip.MustParseAddrPort("198.18.1.3:80"), netip.MustParseAddrPort("[2001:db8::1]:80")
	cs := func(syns, retrans, rsts uint64) *passivePassiveRsStats {
		return &passivePassiveRsStats{Syns: syns, SynRetrans: retrans, Rsts: rsts}
	}
	var pp passivePoller
	t0 := time.Unix(100, 0)
	// The baseline: no deltas.
	ds := pp.startBatch()
	ds = pp.client(ds, 0, 1, a, cs(10, 0, 1), 0)
	ds = pp.client(ds, 1, 2, b, cs(5, 0, 0), 0)
	ds = pp.ownEntry(ds, 0, 1, a, &passiveTracePassiveOwnStats{Connects: 3}, 0)
	if len(ds) != 0 {
		t.Fatalf("baseline deltas: %+v", ds)
	}
	pp.endBatch(ds, false, t0)

	iv := 2 * time.Second
	ds = pp.startBatch()
	ds = pp.client(ds, 0, 1, a, cs(14, 2, 5), iv)
	ds = pp.client(ds, 1, 2, b, cs(5, 0, 0), iv)
	ds = pp.client(ds, 2, 3, c, cs(1, 0, 0), iv) // new since the baseline
	ds = pp.ownEntry(ds, 0, 1, a, &passiveTracePassiveOwnStats{Connects: 4, Refused: 1}, iv)
	got := map[netip.AddrPort]Delta{}
	for _, d := range ds {
		got[d.RealServer] = d
	}
	if len(ds) != 2 || len(got) != 2 {
		t.Fatalf("deltas = %+v, want a and c only (b did not change)", ds)
	}
	da := got[a]
	if da.Interval != iv || da.Clients.SYNs != 4 || da.Clients.Resets != 4 || da.Own.Connects != 1 || da.Own.Refused != 1 {
		t.Errorf("a: %+v", da)
	}
	if r := da.ResetRate(); r != 2.5 { // (4 client + 1 own) / 2 s
		t.Errorf("reset rate = %v", r)
	}
	if r := da.UnansweredRatio(); r != 0.5 {
		t.Errorf("unanswered ratio = %v", r)
	}
	if got[c].Clients.SYNs != 1 {
		t.Errorf("c (new) = %+v", got[c])
	}
	first := ds
	pp.endBatch(ds, true, t0.Add(iv))

	// Counters that went back (a real server removed and added again)
	// yield zero, not a wrapped huge number; slot 1 changed hands (b
	// removed, d added): d counts from zero, not from b's baseline.
	d := netip.MustParseAddrPort("198.18.1.4:80")
	ds = pp.startBatch()
	ds = pp.client(ds, 0, 1, a, cs(10, 0, 1), iv)
	ds = pp.client(ds, 1, 4, d, cs(3, 0, 0), iv)
	for _, x := range ds {
		if x.Clients.SYNs > 10 {
			t.Errorf("wrapped: %+v", x)
		}
		if x.RealServer == d && x.Clients.SYNs != 3 {
			t.Errorf("d (slot reused) = %+v, want 3 SYNs from zero", x)
		}
	}
	if len(ds) > 0 && len(first) > 0 && &ds[0] == &first[0] {
		t.Error("the batch after a sent one reuses its storage")
	}
	pp.endBatch(ds, true, t0.Add(2*iv))
	if third := pp.startBatch(); cap(third) > 0 && &third[:1][0] != &first[:1][0] {
		t.Error("the batch after next does not reuse the first batch's storage")
	}
}

// BenchmarkPassivePoll10k: one read of 10,000 real servers' counters by
// Run, every own counter changed as checks change them each second and
// the client counters unchanged: CPU and allocations per read. "own" reads
// both maps and sends 10,000 deltas; "clients-only" is the daemon's
// setting (ClientDeltasOnly), with no delta to send.
func BenchmarkPassivePoll10k(b *testing.B) {
	for _, clientsOnly := range []bool{false, true} {
		name := "own"
		if clientsOnly {
			name = "clients-only"
		}
		b.Run(name, func(b *testing.B) { benchPoll(b, 10000, clientsOnly) })
	}
}

func benchPoll(b *testing.B, n int, clientsOnly bool) {
	p := mustLoadPassive(b, PassiveOptions{Capacity: 16384, ClientDeltasOnly: clientsOnly})
	if p.trace == nil {
		b.Skip("no tracepoints")
	}
	targets := make([]netip.AddrPort, n)
	keys := make([]passiveTracePassiveRsKey, n)
	vals := make([]passiveTracePassiveOwnStats, n)
	for i := range targets {
		targets[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 80)
		k := encodeRSKey(targets[i])
		copy(keys[i].Addr[:], k[:16])
		keys[i].Port = binary.NativeEndian.Uint16(k[16:])
		keys[i].Proto, keys[i].Family = k[18], k[19]
	}
	if err := p.SetRealServers(targets); err != nil {
		b.Fatal(err)
	}
	bump := func(c uint64) {
		for i := range vals {
			vals[i] = passiveTracePassiveOwnStats{Connects: c, Established: c}
		}
		if _, err := p.trace.OwnTargets.BatchUpdate(keys, vals, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.poll(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var cpu int64 // ns of CPU time of the reads alone: on shared cores wall time is noisy
	for i := range b.N {
		b.StopTimer()
		bump(uint64(i + 1))
		b.StartTimer()
		c0 := cpuTime(b)
		if err := p.poll(); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime(b) - c0
		select {
		case ds := <-p.Deltas():
			if clientsOnly || len(ds) != n {
				b.Fatalf("%d deltas, want %d", len(ds), n)
			}
		default:
			if !clientsOnly {
				b.Fatal("no deltas")
			}
		}
	}
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
}

func TestRSKeyRoundTrip(t *testing.T) {
	for _, s := range []string{"198.18.0.1:80", "[2001:db8::1]:443", "[::ffff:198.18.0.1]:80"} {
		ap := netip.MustParseAddrPort(s)
		k := encodeRSKey(ap)
		got, ok := decodeRSKey(k[:])
		want := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		if !ok || got != want {
			t.Errorf("%s: round trip = %v, %v", s, got, ok)
		}
		if k[18] != 6 || binary.BigEndian.Uint16(k[16:]) != ap.Port() {
			t.Errorf("%s: key %x", s, k)
		}
	}
}

// FuzzDecodeEvent feeds arbitrary records to the event decoder: it must
// never panic, must accept every well-formed record and reject a record
// that is too short or names an unknown family.
func FuzzDecodeEvent(f *testing.F) {
	ok := make([]byte, eventSize)
	binary.NativeEndian.PutUint64(ok, 12345)
	k := encodeRSKey(netip.MustParseAddrPort("198.18.0.2:80"))
	copy(ok[8:], k[:])
	binary.NativeEndian.PutUint32(ok[8+rsKeySize:], uint32(EventReset))
	f.Add(ok)
	f.Add(ok[:eventSize-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e Event
		got := decodeEvent(raw, &e)
		wellFormed := len(raw) >= eventSize && (raw[8+19] == 4 || raw[8+19] == 6)
		if got != wellFormed {
			t.Fatalf("decodeEvent(%x) = %v, want %v", raw, got, wellFormed)
		}
		if !got {
			return
		}
		if !e.RealServer.IsValid() || e.RealServer.Addr().Is4() != (raw[8+19] == 4) {
			t.Fatalf("decoded %v from %x", e.RealServer, raw)
		}
		k := encodeRSKey(e.RealServer)
		if raw[8+19] == 4 {
			if string(k[:4]) != string(raw[8:12]) {
				t.Fatalf("address does not round-trip")
			}
		} else if string(k[:16]) != string(raw[8:24]) && !e.RealServer.Addr().Is4In6() {
			t.Fatalf("address does not round-trip")
		}
		_ = e.Kind.String()
	})
}
