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

func TestDiffSnapshots(t *testing.T) {
	a, b, c := netip.MustParseAddrPort("198.18.1.2:80"), netip.MustParseAddrPort("198.18.1.3:80"), netip.MustParseAddrPort("[2001:db8::1]:80")
	t0 := time.Unix(100, 0)
	prev := passiveSnapshot{at: t0,
		clients: map[netip.AddrPort]ClientCounters{a: {SYNs: 10, Resets: 1}, b: {SYNs: 5}},
		own:     map[netip.AddrPort]OwnCounters{a: {Connects: 3}},
	}
	next := passiveSnapshot{at: t0.Add(2 * time.Second),
		clients: map[netip.AddrPort]ClientCounters{a: {SYNs: 14, SYNRetransmits: 2, Resets: 5}, b: {SYNs: 5}, c: {SYNs: 1}},
		own:     map[netip.AddrPort]OwnCounters{a: {Connects: 4, Refused: 1}},
	}
	ds := diffSnapshots(prev, next)
	got := map[netip.AddrPort]Delta{}
	for _, d := range ds {
		got[d.RealServer] = d
	}
	if len(ds) != 2 {
		t.Fatalf("deltas = %+v, want a and c only (b did not change)", ds)
	}
	da := got[a]
	if da.Interval != 2*time.Second || da.Clients.SYNs != 4 || da.Clients.Resets != 4 || da.Own.Connects != 1 || da.Own.Refused != 1 {
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
	// A counter that went back (a real server removed and added again)
	// yields zero, not a wrapped huge number.
	back := diffSnapshots(next, prev)
	for _, d := range back {
		if d.Clients.SYNs > 10 {
			t.Errorf("wrapped: %+v", d)
		}
	}
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
