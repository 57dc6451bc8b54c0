package prober

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// fakeClock is a settable clock for the detector.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newReleaseDetector is a detector over a scheduler with no checks, on a
// fake clock.
func newReleaseDetector(t testing.TB) (*Detector, *fakeClock) {
	t.Helper()
	clk := &fakeClock{now: time.Unix(1000, 0)}
	_, d := newTestDetector(t, &config.Config{}, SchedulerOptions{}, DetectorOptions{Now: clk.Now})
	return d, clk
}

// newTestDetector returns a scheduler for cfg and a detector on it.
func newTestDetector(t testing.TB, cfg *config.Config, so SchedulerOptions, do DetectorOptions) (*Scheduler, *Detector) {
	t.Helper()
	s, err := NewScheduler(cfg, so)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDetector(s, do)
	if err != nil {
		t.Fatal(err)
	}
	return s, d
}

// TestDetectorHeldCount: the count of held recoveries that lets release
// skip its scan follows every way a recovery is held, released and
// cancelled, and a held recovery is still released when due.
func TestDetectorHeldCount(t *testing.T) {
	d, clk := newReleaseDetector(t)
	key := config.RealServerKey{VirtualServer: "198.18.250.1:80", Addr: netip.MustParseAddr("198.18.1.2"), Port: 80}
	other := config.RealServerKey{VirtualServer: "198.18.250.1:80", Addr: netip.MustParseAddr("198.18.1.3"), Port: 80}
	step := func(k config.RealServerKey, up bool) []Transition {
		clk.add(10 * time.Millisecond)
		return d.transition(Transition{Key: k, Up: up, At: clk.Now()})
	}
	wantHeld := func(n int) {
		t.Helper()
		if d.held != n {
			t.Fatalf("held = %d, want %d", d.held, n)
		}
	}
	// Flap until the penalty holds a recovery back: first verdict up, then
	// down/up three times (penalty 1, 2, 3 at the failures).
	step(key, true)
	step(other, true)
	for range 2 {
		step(key, false)
		if out := step(key, true); len(out) != 1 {
			t.Fatalf("recovery at low penalty not passed on: %v", out)
		}
		wantHeld(0)
	}
	step(key, false)
	if out := step(key, true); len(out) != 0 {
		t.Fatalf("recovery at penalty %.1f passed on at once: %v", d.damp[key].penalty, out)
	}
	wantHeld(1)
	if out := d.release(); len(out) != 0 {
		t.Fatalf("released before its time: %v", out)
	}
	wantHeld(1)
	clk.add(DefaultHoldMax)
	out := d.release()
	if len(out) != 1 || out[0].Key != key || !out[0].Up || out[0].Detection == nil || out[0].Detection.Held <= 0 {
		t.Fatalf("release = %+v, want the held recovery", out)
	}
	wantHeld(0)
	if out := d.release(); out != nil {
		t.Fatalf("second release = %v", out)
	}
	// Held again, then a failure cancels it: nothing left held.
	step(key, false)
	if out := step(key, true); len(out) != 0 {
		t.Fatal("recovery not held")
	}
	wantHeld(1)
	if out := step(key, false); len(out) != 0 {
		t.Fatalf("failure during the hold passed on: %v", out)
	}
	wantHeld(0)
	clk.add(DefaultHoldMax)
	if out := d.release(); out != nil {
		t.Fatalf("cancelled hold released: %v", out)
	}
}

// BenchmarkDetectorRelease10k: the detector's periodic look at held
// recoveries (every 100 ms) with 10,000 real servers known and none held.
func BenchmarkDetectorRelease10k(b *testing.B) {
	d, clk := newReleaseDetector(b)
	for i := range 10000 {
		k := config.RealServerKey{VirtualServer: "198.18.250.1:80", Addr: netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), Port: 80}
		d.transition(Transition{Key: k, Up: true, At: clk.Now()})
	}
	b.ReportAllocs()
	for b.Loop() {
		if out := d.release(); out != nil {
			b.Fatal(out)
		}
	}
}
