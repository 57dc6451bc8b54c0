package prober

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// startLog wraps checkers to record when each attempt of the healthy
// endpoints starts, and signals when every one of them has started want
// attempts.
type startLog struct {
	mu      sync.Mutex
	healthy map[netip.AddrPort]bool
	starts  map[netip.AddrPort][]time.Time
	want    int
	full    int // healthy endpoints with want starts
	done    chan struct{}
	async   bool // the checkers keep TCP_CHECK's asynchronous path (scheduler_async.go)
}

func (l *startLog) newChecker(c *config.Checker, opts CheckerOptions) (Checker, error) {
	ck, err := NewChecker(c, opts)
	if err != nil {
		return nil, err
	}
	sl := &startLogged{Checker: ck, ep: netip.AddrPortFrom(c.ConnectIP, c.ConnectPort), log: l}
	if l.async {
		return &startLoggedAsync{sl}, nil
	}
	return sl, nil
}

type startLogged struct {
	Checker
	ep  netip.AddrPort
	log *startLog
}

// startLoggedAsync is startLogged for an asynchronous checker, still
// started asynchronously.
type startLoggedAsync struct{ *startLogged }

func (c *startLoggedAsync) checkAsync(g *asyncGroup, ref attemptRef) {
	c.note()
	c.Checker.(asyncChecker).checkAsync(g, ref)
}

func (c *startLogged) Check(ctx context.Context) Result {
	c.note()
	return c.Checker.Check(ctx)
}

// note records an attempt's start.
func (c *startLogged) note() {
	l := c.log
	l.mu.Lock()
	if l.healthy[c.ep] {
		l.starts[c.ep] = append(l.starts[c.ep], time.Now())
		if len(l.starts[c.ep]) == l.want {
			if l.full++; l.full == len(l.healthy) {
				close(l.done)
			}
		}
	}
	l.mu.Unlock()
}

// TestSchedulerBlackHolesDoNotHoldBack checks 20 healthy endpoints and 200
// black-holed ones (every packet dropped: each attempt waits for its whole
// connect_timeout) with TCP_CHECK, delay_loop 1, connect_timeout 1, and a
// concurrency ceiling of 64: the black-holed attempts alone would hold 100
// slots on average. As in keepalived, which has no such limit, they must
// not delay the healthy endpoints' checks: once the black-holed real
// servers are down, each healthy endpoint starts an attempt every
// delay_loop (plus its sub-millisecond check), never waiting for a slot.
// Before attempts waiting on the network stopped counting against the
// limit, the due queue fell behind without bound and the healthy
// endpoints' checks ran seconds late. Both ways of running an attempt
// are covered: TCP_CHECK's own (asynchronous, no goroutine) and a
// goroutine per attempt (every other checker's).
func TestSchedulerBlackHolesDoNotHoldBack(t *testing.T) {
	testenv.RequireRoot(t)
	for _, async := range []bool{true, false} {
		name := "goroutine"
		if async {
			name = "async"
		}
		t.Run(name, func(t *testing.T) { testBlackHolesDoNotHoldBack(t, async) })
	}
}

func testBlackHolesDoNotHoldBack(t *testing.T, async bool) {
	const healthyN, blackN, rounds = 20, 200, 10
	n := testnet.New(t, testnet.Options{RealServers: 2})
	good, bad := n.RealServers[0], n.RealServers[1]
	log := &startLog{healthy: map[netip.AddrPort]bool{}, starts: map[netip.AddrPort][]time.Time{},
		want: rounds, done: make(chan struct{}), async: async}
	tm := timing{delayLoop: time.Second, warmup: time.Second}
	var healthy, black []*config.RealServer
	for i := range healthyN {
		l := good.Listen(t, "tcp", netip.AddrPortFrom(good.Addr, 0).String())
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
		t.Cleanup(func() { _ = l.Close() })
		ep := netip.MustParseAddrPort(l.Addr().String())
		log.healthy[ep] = true
		healthy = append(healthy, endpointServer(ep, tm, i))
	}
	bad.BlackHole(t)
	for i := range blackN {
		black = append(black, endpointServer(netip.AddrPortFrom(bad.Addr, uint16(2000+i)), tm, i))
	}
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, healthy...), vs(2, black...)}}
	s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: log.newChecker, MaxConcurrent: 64, StartDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range s.plan.units {
		if u.async != async {
			t.Fatalf("%s: async %v, want %v", u.checker, u.async, async)
		}
	}
	c := startScheduler(t, s)
	select {
	case <-log.done:
	case <-time.After(time.Duration(3*rounds) * time.Second):
	}
	st, ls := s.Stats(), s.LimiterStats()
	t.Logf("attempts %d failures %d in flight %d; limit %d: %+v", st.Attempts, st.Failures, st.InFlight, s.ConcurrencyLimit(), ls)

	// From the fourth attempt on (the black-holed real servers are down by
	// then), no healthy endpoint's attempt starts more than 300 ms later
	// than delay_loop after its previous one (the slack is for a loaded
	// test machine's timers).
	log.mu.Lock()
	defer log.mu.Unlock()
	late, gaps, short := 0, 0, 0
	var worst time.Duration
	for ep, starts := range log.starts {
		if len(starts) < rounds {
			short++
			t.Logf("%v: %d attempts started, want %d", ep, len(starts), rounds)
		}
		for i := 4; i < len(starts); i++ {
			gap := starts[i].Sub(starts[i-1])
			gaps++
			worst = max(worst, gap)
			if gap > time.Second+300*time.Millisecond {
				late++
			}
		}
	}
	t.Logf("healthy endpoints: %d gaps, %d late, worst %v", gaps, late, worst)
	if short > 0 {
		t.Errorf("%d of %d healthy endpoints did not start %d attempts in %d s: held back", short, healthyN, rounds, 3*rounds)
	}
	if late > gaps/50 {
		t.Errorf("%d of %d gaps between a healthy endpoint's attempts over delay_loop + 300 ms (worst %v), want at most 2 %%", late, gaps, worst)
	}
	down := 0
	for _, tr := range c.list() {
		if !tr.Up && tr.Key.Addr == bad.Addr {
			down++
		}
	}
	if down != blackN {
		t.Errorf("%d black-holed real servers went down, want %d", down, blackN)
	}
}

// endpointServer is a real server at ep checked by one TCP_CHECK with
// timing tm (connect_timeout 1 s, retry 0); i tells its blocks apart.
func endpointServer(ep netip.AddrPort, tm timing, i int) *config.RealServer {
	b := &config.Checker{Pos: config.Pos{File: "test.conf", Line: i + 1}, Type: config.TCPCheck,
		ConnectIP: ep.Addr(), ConnectPort: ep.Port(), ConnectTimeout: time.Second,
		DelayLoop: tm.delayLoop, Warmup: tm.warmup}
	return &config.RealServer{Addr: ep.Addr(), Port: ep.Port(), Weight: 1, Method: config.NAT, Checkers: []*config.Checker{b}}
}
