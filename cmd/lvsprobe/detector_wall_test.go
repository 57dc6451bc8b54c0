package main

import (
	"net/netip"
	"testing"
	"time"
)

// TestWallOf: a kernel (CLOCK_MONOTONIC) stamp becomes the wall-clock time
// it stands for; an unknown or impossible stamp dates the evidence now.
func TestWallOf(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	const kn = 5_000_000_000
	tests := []struct {
		name string
		k    uint64
		want time.Time
	}{
		{"3 ms before now", kn - 3_000_000, now.Add(-3 * time.Millisecond)},
		{"now", kn, now},
		{"unknown", 0, now},
		{"from the future", kn + 1, now},
	}
	for _, tc := range tests {
		if got := wallOf(tc.k, now, kn); !got.Equal(tc.want) {
			t.Errorf("%s: wallOf(%d) = %v, want %v", tc.name, tc.k, got, tc.want)
		}
	}
}

// TestReportDates: a passive report's evidence is dated by its real
// server's first event since the previous report, never by an event the
// previous report covered, and not at all (hand-over time) without one.
func TestReportDates(t *testing.T) {
	a, b := netip.MustParseAddrPort("198.18.0.2:80"), netip.MustParseAddrPort("198.18.0.3:80")
	t0 := time.Unix(1_700_000_000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	var r reportDates
	r.event(a, ms(20))
	r.event(a, ms(10)) // delivered out of order: the earlier counts
	r.event(a, ms(30))
	r.report(ms(40))
	if got := r.of(a); !got.Equal(ms(10)) {
		t.Fatalf("first report: %v dated %v, want its first event %v", a, got, ms(10))
	}
	if got := r.of(b); !got.IsZero() {
		t.Fatalf("first report: %v dated %v without an event, want zero", b, got)
	}
	r.done()
	r.event(a, ms(35)) // before the first report's read: counted there
	r.event(b, ms(50))
	r.report(ms(60))
	if got := r.of(a); !got.IsZero() {
		t.Fatalf("second report: %v dated %v by an event the first report covered, want zero", a, got)
	}
	if got := r.of(b); !got.Equal(ms(50)) {
		t.Fatalf("second report: %v dated %v, want %v", b, got, ms(50))
	}
	r.done()
	r.report(ms(80))
	if got := r.of(b); !got.IsZero() {
		t.Fatalf("third report: %v dated %v, want zero once its events were reported", b, got)
	}
}
