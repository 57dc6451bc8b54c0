package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/lvsprobe/lvsprobe/internal/prober/synprobe"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// detLab is one real server in a namespace with a Go listener that a test
// kills and restarts, checked by a real TCP_CHECK through the scheduler,
// SYN-probed by the real prober (eBPF receiver), and watched by a
// detector fed by the probes.
type detLab struct {
	t     *testing.T
	rs    *testnet.RealServer
	addr  netip.AddrPort
	sched *Scheduler
	det   *Detector
	log   *attemptLog
	ctx   context.Context
	trans chan Transition

	mu sync.Mutex
	l  net.Listener
}

// detLabOptions are the timings of the lab's TCP_CHECK.
type detLabOptions struct {
	mode                                   DetectorMode
	connectTimeout, delayLoop, delayBefore time.Duration
	retry                                  int
	probeInterval                          time.Duration
	events                                 *eventLog // if set, records the lab's events in order (detector_order_test.go)
}

func newDetLab(t *testing.T, o detLabOptions) *detLab {
	t.Helper()
	testenv.RequireRoot(t)
	if !testnet.Inside() {
		testenv.SkipOrFail(t, "needs the test network namespace (testnet.Main as root)")
	}
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	lab := &detLab{t: t, rs: rs, addr: netip.AddrPortFrom(rs.Addr, 8080), trans: make(chan Transition, 1024)}
	lab.start()
	t.Cleanup(lab.kill)

	block := &config.Checker{
		Pos: config.Pos{File: "detector.conf", Line: 1}, Type: config.TCPCheck,
		ConnectIP: lab.addr.Addr(), ConnectPort: lab.addr.Port(), ConnectTimeout: o.connectTimeout,
		Retry: o.retry, DelayBeforeRetry: o.delayBefore, DelayLoop: o.delayLoop,
	}
	vs := &config.VirtualServer{Addr: netip.MustParseAddr("198.18.250.1"), Port: 80, Family: "inet", Protocol: config.TCP,
		RealServers: []*config.RealServer{{Addr: lab.addr.Addr(), Port: lab.addr.Port(), Weight: 1, Checkers: []*config.Checker{block}}}}
	lab.log = newAttemptLog(NewChecker)
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	newChecker := lab.log.newChecker
	if o.events != nil {
		logger = slog.New(o.events.handler(logger.Handler()))
		newChecker = o.events.newChecker(newChecker)
	}
	s, err := NewScheduler(&config.Config{VirtualServers: []*config.VirtualServer{vs}},
		SchedulerOptions{NewChecker: newChecker, StartDelay: -1, FirstVerdict: true, Log: logger})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDetector(s, DetectorOptions{Mode: o.mode, Log: logger})
	if err != nil {
		t.Fatal(err)
	}
	lab.sched, lab.det = s, d

	p, err := synprobe.New(synprobe.Config{Interval: o.probeInterval, Interfaces: []string{rs.Link}, Logger: logger})
	if errors.Is(err, loader.ErrNotSupported) {
		testenv.SkipOrFail(t, "eBPF receiver not available: "+err.Error())
	}
	if err != nil {
		t.Fatalf("new prober: %v", err)
	}
	if err := p.Add(lab.addr, 0); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	lab.ctx = ctx
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Run(ctx) })
	wg.Go(func() { _ = d.Run(ctx) })
	wg.Go(func() { _ = p.Run(ctx) })
	wg.Go(func() { pump(ctx, p, d, o.events) })
	wg.Go(func() {
		for tr := range d.Transitions() {
			lab.trans <- tr
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := p.Close(); err != nil {
			t.Errorf("close prober: %v", err)
		}
	})
	return lab
}

// pump hands the prober's signals to the detector, as cmd/lvsprobe does,
// recording each miss in events (if not nil) before the detector sees it.
func pump(ctx context.Context, p *synprobe.Prober, d *Detector, events *eventLog) {
	var evs []Evidence
	for {
		select {
		case <-ctx.Done():
			return
		case batch := <-p.Signals():
			evs = evs[:0]
			now := time.Now()
			for _, s := range batch {
				ev := Evidence{Target: s.Target, RTT: s.RTT, At: now}
				switch s.Kind {
				case synprobe.SynAck:
					ev.Kind = EvidenceSynAck
				case synprobe.Reset:
					ev.Kind = EvidenceReset
				case synprobe.Miss:
					ev.Kind, ev.Count = EvidenceSilence, s.ConsecutiveMisses
					events.add(fmt.Sprintf("miss %d", s.ConsecutiveMisses))
				}
				evs = append(evs, ev)
			}
			d.Observe(evs...)
		}
	}
}

// sumCounters sums the counters c collects.
func sumCounters(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		sum += pb.GetCounter().GetValue()
	}
	return sum
}

// start starts the real server's listener (the process comes back).
func (lab *detLab) start() {
	lab.mu.Lock()
	defer lab.mu.Unlock()
	if lab.l == nil {
		lab.l = lab.rs.Listen(lab.t, "tcp", lab.addr.String())
		go serve(lab.l)
	}
}

// kill closes it (the process dies: the kernel answers with RSTs).
func (lab *detLab) kill() {
	lab.mu.Lock()
	defer lab.mu.Unlock()
	if lab.l != nil {
		_ = lab.l.Close()
		lab.l = nil
	}
}

// next waits for the next transition the detector passes on.
func (lab *detLab) next() Transition {
	lab.t.Helper()
	select {
	case tr := <-lab.trans:
		return tr
	case <-lab.ctx.Done():
		lab.t.Fatalf("waiting for a transition: %v", lab.ctx.Err())
	}
	return Transition{}
}

// waitAttempts waits until n attempts have completed in all.
func (lab *detLab) waitAttempts(n int) {
	lab.t.Helper()
	for len(lab.log.records()) < n {
		select {
		case <-lab.log.tick:
		case <-lab.ctx.Done():
			lab.t.Fatalf("waiting for %d attempts: %v", n, lab.ctx.Err())
		}
	}
}

// TestDetectorKilledRealServer: a real server whose process dies is out
// after one confirming check, long before delay_loop and without the
// retry ladder, and one that comes back is in again after its SYN-ACK
// runs the check, also long before delay_loop.
func TestDetectorKilledRealServer(t *testing.T) {
	const delayLoop = 30 * time.Second
	lab := newDetLab(t, detLabOptions{connectTimeout: 3 * time.Second, delayLoop: delayLoop,
		delayBefore: 5 * time.Second, retry: 3, probeInterval: 50 * time.Millisecond})

	if first := lab.next(); !first.Up {
		t.Fatalf("first verdict %+v, want up", first)
	}
	before := len(lab.log.records())
	killed := time.Now()
	lab.kill()
	down := lab.next()
	took := time.Since(killed)
	t.Logf("down after %v: %s %v", took, down.Reason, down.Detection.LogAttrs())
	if down.Up || down.Detection == nil {
		t.Fatalf("got %+v, want down with its detection", down)
	}
	if took > delayLoop/10 {
		t.Fatalf("down %v after the kill, want well before delay_loop %v", took, delayLoop)
	}
	if !strings.Contains(down.Detection.Cut, "rst") || down.Detection.FirstSignal != "rst" {
		t.Fatalf("detection %+v: want the RST as first signal and as the ladder's cut", *down.Detection)
	}
	var failed int
	for _, r := range lab.log.records()[before:] {
		if !r.ok && !r.at.After(down.At) {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d failed attempts decided it, want 1 (retry 3, cut short)", failed)
	}

	restarted := time.Now()
	lab.start()
	up := lab.next()
	took = time.Since(restarted)
	t.Logf("up after %v: %s %v", took, up.Reason, up.Detection.LogAttrs())
	if !up.Up || up.Detection == nil || up.Detection.FirstSignal != "synack" {
		t.Fatalf("got %+v (%+v), want up after a SYN-ACK", up, up.Detection)
	}
	if took > delayLoop/10 {
		t.Fatalf("up %v after the restart, want well before delay_loop %v", took, delayLoop)
	}
	if n := testutil.CollectAndCount(lab.det.m.latency); n == 0 {
		t.Fatal("no detection latency recorded")
	}
}

// TestDetectorLossNeverRemoves: with 30% of the packets the real server
// receives dropped (nftables numgen), probes go unanswered in runs and
// raise suspicions, but the checks still pass and the real server is
// never removed.
func TestDetectorLossNeverRemoves(t *testing.T) {
	testenv.RequireProgram(t, "nft")
	lab := newDetLab(t, detLabOptions{connectTimeout: 5 * time.Second, delayLoop: time.Second,
		delayBefore: time.Second, retry: 3, probeInterval: 20 * time.Millisecond})
	if first := lab.next(); !first.Up {
		t.Fatalf("first verdict %+v, want up", first)
	}
	lab.rs.Run(t, "nft", "add table inet loss { chain in { type filter hook input priority -300; numgen random mod 10 < 3 drop; }; }")

	// Long enough for suspicions (a run of 3 misses is 2.7% of probes at
	// 30% loss, 50 probes/s) and many checks.
	lab.waitAttempts(len(lab.log.records()) + 20)
	sus := sumCounters(t, lab.det.m.suspicions)
	falseSus := testutil.ToFloat64(lab.det.m.falseSuspicions)
	var failed int
	for _, r := range lab.log.records() {
		if !r.ok {
			failed++
		}
	}
	t.Logf("suspicions %v, cleared by the check %v, failed attempts %d of %d", sus, falseSus, failed, len(lab.log.records()))
	select {
	case tr := <-lab.trans:
		t.Fatalf("transition %+v under 30%% loss with the checks passing", tr)
	default:
	}
	if sus == 0 {
		t.Fatal("no suspicion at 30% loss: the test did not exercise the detector")
	}
	if testutil.ToFloat64(lab.det.m.cuts) != 0 {
		t.Fatal("a ladder was cut under loss")
	}
}

// TestDetectorFlappingBounded: a real server whose process dies and comes
// back every 200 ms for 10 s changes IPVS a bounded number of times, and
// once it stays up it is re-added within 15 s.
func TestDetectorFlappingBounded(t *testing.T) {
	lab := newDetLab(t, detLabOptions{connectTimeout: time.Second, delayLoop: 2 * time.Second,
		delayBefore: 500 * time.Millisecond, retry: 1, probeInterval: 20 * time.Millisecond})
	if first := lab.next(); !first.Up {
		t.Fatalf("first verdict %+v, want up", first)
	}
	tk := time.NewTicker(200 * time.Millisecond) // fault injection, not synchronisation
	end := time.Now().Add(10 * time.Second)
	changes := 0
	for up := true; time.Now().Before(end); {
		select {
		case <-tk.C:
			if up {
				lab.kill()
			} else {
				lab.start()
			}
			up = !up
		case tr := <-lab.trans:
			changes++
			t.Logf("flapping: up=%t %v", tr.Up, tr.Detection.LogAttrs())
		}
	}
	tk.Stop()
	lab.start()
	stable := time.Now()
	const maxChanges = 8
	if changes > maxChanges {
		t.Fatalf("%d IPVS changes in 10 s of flapping every 200 ms, want at most %d", changes, maxChanges)
	}
	st := lab.det.Status()
	if len(st.Damping) == 0 || st.Damping[0].Penalty < 2 {
		t.Fatalf("damping %+v: want a penalty of 2 or more after flapping", st.Damping)
	}
	for {
		tr := lab.next()
		changes++
		if tr.Up {
			took := time.Since(stable)
			t.Logf("re-added %v after it stopped flapping (%d changes in all): %v", took, changes, tr.Detection.LogAttrs())
			if took > 15*time.Second {
				t.Fatalf("re-added %v after recovering, want within 15 s", took)
			}
			return
		}
	}
}
