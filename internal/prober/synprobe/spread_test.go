package synprobe

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
	dto "github.com/prometheus/client_model/go"
)

// TestSendSpread: at a few thousand targets the send loop spreads its
// probes over short ticks instead of one burst every 10 ms. 3,000 targets
// at 100 ms are 30,000 probes/s: the old 10 ms tick sent 300 frames per
// wakeup; now no wakeup sends more than wakeLimit probes that were not
// yet due (late ones are never held back), the tick is about
// 3.3 ms, every target is probed, the closed ports' RSTs come back and
// the wakeup histogram saw what the hook saw. Real packets to a real
// server's kernel over veth; nothing is timed.
func TestSendSpread(t *testing.T) {
	n := testnet.New(t, testnet.Options{RealServers: 1})
	rs := n.RealServers[0]
	p, reg := newTestProber(t, n, Config{Interval: 100 * time.Millisecond, PortLo: 62000, PortHi: 62999})
	const targets, wantProbes = 3000, 30000 // a second's worth
	w := probeWakeups(t, p, rs.Addr, targets, wantProbes)
	wakeups, probes, onTime, most, over, ticks := w.wakeups, w.probes, w.onTime, w.most, w.over, w.ticks
	wantTick, wantLimit := tickFor(targets*probeRate(uint64(100*time.Millisecond)), 100*time.Millisecond)
	t.Logf("%d probes (%d not yet due) in %d wakeups (%.1f each, most %d not yet due), ticks %v", probes, onTime, wakeups, float64(probes)/float64(wakeups), most, ticks)
	if wantLimit != wakeLimit || wantTick >= sendTick {
		t.Fatalf("tickFor: tick %v limit %d at %d targets; the test wants a short tick", wantTick, wantLimit, targets)
	}
	if most > wakeLimit {
		t.Errorf("a wakeup sent %d probes that were not yet due, over the limit %d", most, wakeLimit)
	}
	// Most wakeups ran at the short tick (the first ones may not: targets
	// were being added), and carried about a tick's probes, not 10 ms'.
	if ticks[wantTick] < wakeups/2 {
		t.Errorf("%d of %d wakeups at the %v tick", ticks[wantTick], wakeups, wantTick)
	}
	// Probes not yet due are spread; late ones go at once (a starved
	// loop, as in the emulated kernel lab, sends little else).
	if per, tenMs := float64(onTime)/float64(wakeups), float64(targets)/10; per > tenMs/2 {
		t.Errorf("%.0f probes not yet due per wakeup: not spread (a 10 ms tick sends %.0f)", per, tenMs)
	}
	var unprobed int
	for _, s := range p.SnapshotAll(nil) {
		if s.Sent == 0 {
			unprobed++
		}
	}
	if unprobed > 0 {
		t.Errorf("%d of %d targets never probed", unprobed, targets)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	h, rst := histogram(mfs, "lvsprobe_synprobe_probes_per_wakeup"), counter(mfs, "lvsprobe_synprobe_answers_total", "rst")
	if h == nil {
		t.Fatal("no probes_per_wakeup histogram")
	}
	if got := h.GetSampleCount(); got != uint64(wakeups) {
		t.Errorf("probes_per_wakeup counted %d wakeups, the hook %d", got, wakeups)
	}
	if got := h.GetSampleSum(); got != float64(probes) {
		t.Errorf("probes_per_wakeup summed %v probes, the hook %d", got, probes)
	}
	for _, b := range h.GetBucket() {
		if b.GetUpperBound() == wakeLimit && h.GetSampleCount()-b.GetCumulativeCount() != uint64(over) {
			t.Errorf("the histogram has %d wakeups above %d probes, the hook %d", h.GetSampleCount()-b.GetCumulativeCount(), wakeLimit, over)
		}
	}
	if rst < targets {
		t.Errorf("%v RSTs from %d closed ports, want one per target at least", rst, targets)
	}
}

// TestSendGrid: a small prober wakes on its grid. 100 targets every
// 80 ms are 1,250 probes/s, 12.5 a 10 ms tick; on the 40 ms grid
// (tick.go) each wakeup carries half the targets. Real packets over veth
// to a real server's kernel (closed ports: every probe gets a RST, which
// wakes the loop at once but sends nothing); nothing is timed.
func TestSendGrid(t *testing.T) {
	n := testnet.New(t, testnet.Options{RealServers: 1})
	rs := n.RealServers[0]
	const (
		targets    = 100
		interval   = 80 * time.Millisecond
		wantProbes = 2000 // 16 rounds
	)
	p, reg := newTestProber(t, n, Config{Interval: interval, PortLo: 62000, PortHi: 62999})
	w := probeWakeups(t, p, rs.Addr, targets, wantProbes)
	wakeups, probes, ticks := w.wakeups, w.probes, w.ticks
	t.Logf("%d probes in %d wakeups (%.1f each), ticks %v", probes, wakeups, float64(probes)/float64(wakeups), ticks)
	const grid = 40 * time.Millisecond
	if ticks[grid] < wakeups*3/4 {
		t.Errorf("%d of %d wakeups on the %v grid", ticks[grid], wakeups, grid)
	}
	// About half the targets a wakeup; the 10 ms tick carried an eighth.
	if per := float64(probes) / float64(wakeups); per < targets/4 {
		t.Errorf("%.1f probes a wakeup, want about %d (a 10 ms tick sends %.1f)", per, targets/2, float64(targets)/8)
	}
	for _, s := range p.SnapshotAll(nil) {
		if s.Sent == 0 || s.Answered == 0 {
			t.Errorf("%v: %d probes sent, %d answered", s.Target, s.Sent, s.Answered)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if rst := counter(mfs, "lvsprobe_synprobe_answers_total", "rst"); rst < targets {
		t.Errorf("%v RSTs from %d closed ports, want one per target at least", rst, targets)
	}
}

// wakeupLog adds up the send loop's wakeups that sent probes
// (Prober.onWakeup).
type wakeupLog struct {
	wakeups, probes int
	onTime          int // probes not yet due when sent
	most            int // the most probes not yet due one wakeup sent
	over            int // wakeups that sent more than wakeLimit in all (late probes included)
	ticks           map[time.Duration]int
}

// probeWakeups probes targets ports of rs from 20000 up with p until its
// send loop has sent wantProbes probes (or fails the test after
// waitTimeout), stops p and returns what the wakeups did.
func probeWakeups(t *testing.T, p *Prober, rs netip.Addr, targets, wantProbes int) wakeupLog {
	t.Helper()
	var (
		mu     sync.Mutex
		w      = wakeupLog{ticks: map[time.Duration]int{}}
		enough = make(chan struct{})
	)
	p.onWakeup = func(n, overdue int, tick time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		w.wakeups++
		w.probes += n
		w.most = max(w.most, n-overdue) // late probes are never held back
		w.onTime += n - overdue
		if n > wakeLimit {
			w.over++
		}
		w.ticks[tick]++
		if w.probes >= wantProbes && w.probes-n < wantProbes {
			close(enough)
		}
	}
	for port := range uint16(targets) {
		if err := p.Add(netip.AddrPortFrom(rs, 20000+port), 0); err != nil {
			t.Fatal(err)
		}
	}
	stop := start(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	select {
	case <-enough:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d probes sent in %v, want %d", w.probes, waitTimeout, wantProbes)
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	return w
}

// histogram returns the histogram of the family name, nil if absent.
func histogram(mfs []*dto.MetricFamily, name string) *dto.Histogram {
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	return nil
}

// counter returns the counter of the family name whose one label has
// value, 0 if absent.
func counter(mfs []*dto.MetricFamily, name, value string) float64 {
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == value {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
