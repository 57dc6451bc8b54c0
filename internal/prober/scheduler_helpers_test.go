package prober

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// fakeEnv scripts the checks of a scheduler unit test: which endpoints
// pass, how long an attempt takes, and when each attempt started. It is
// pure logic, no I/O (allowed for unit tests of the timing).
type fakeEnv struct {
	t0   time.Time
	hold time.Duration // how long each attempt takes

	mu       sync.Mutex
	fail     map[string]bool
	attempts map[string][]time.Duration // start offsets from t0

	inflight, maxInflight atomic.Int32
}

func newFakeEnv() *fakeEnv {
	return &fakeEnv{t0: time.Now(), fail: map[string]bool{}, attempts: map[string][]time.Duration{}}
}

func (e *fakeEnv) setFail(ep string, fail bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fail[ep] = fail
}

func (e *fakeEnv) starts(ep string) []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Duration(nil), e.attempts[ep]...)
}

// newChecker is the constructor injected into the scheduler.
func (e *fakeEnv) newChecker(c *config.Checker, _ CheckerOptions) (Checker, error) {
	if c.Type != config.TCPCheck {
		return nil, fmt.Errorf("%s %s: %w", c.Pos, c.Type, ErrUnsupported)
	}
	return &fakeChecker{env: e, ep: netip.AddrPortFrom(c.ConnectIP, c.ConnectPort).String()}, nil
}

type fakeChecker struct {
	env *fakeEnv
	ep  string
}

func (f *fakeChecker) Key() string    { return "fake " + f.ep }
func (f *fakeChecker) String() string { return "fake check " + f.ep }

func (f *fakeChecker) Check(ctx context.Context) Result {
	e := f.env
	n := e.inflight.Add(1)
	defer e.inflight.Add(-1)
	for {
		m := e.maxInflight.Load()
		if n <= m || e.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	e.mu.Lock()
	e.attempts[f.ep] = append(e.attempts[f.ep], time.Since(e.t0))
	fail := e.fail[f.ep]
	e.mu.Unlock()
	if e.hold > 0 {
		select {
		case <-time.After(e.hold):
		case <-ctx.Done():
			return Result{Err: ctx.Err()}
		}
	}
	if fail {
		return Result{Message: "connect " + f.ep + ": refused"}
	}
	return Result{OK: true, Message: "connect " + f.ep + ": ok"}
}

// timing is a checker block's timing for tests.
type timing struct {
	delayLoop, delayBeforeRetry, warmup time.Duration
	retry                               int
	alpha                               bool
}

// tcpBlock is a TCP_CHECK block on 198.18.0.N:port.
func tcpBlock(n byte, port uint16, tm timing) *config.Checker {
	return &config.Checker{
		Pos:  config.Pos{File: "test.conf", Line: int(n)*100 + int(port%100)},
		Type: config.TCPCheck, ConnectIP: netip.AddrFrom4([4]byte{198, 18, 0, n}), ConnectPort: port,
		ConnectTimeout: time.Second, Retry: tm.retry, DelayBeforeRetry: tm.delayBeforeRetry,
		DelayLoop: tm.delayLoop, Warmup: tm.warmup, Alpha: tm.alpha,
	}
}

// rs is a real server 198.18.0.N:80 with the given checker blocks.
func rs(n byte, checkers ...*config.Checker) *config.RealServer {
	return &config.RealServer{Addr: netip.AddrFrom4([4]byte{198, 18, 0, n}), Port: 80, Weight: 1, Method: config.NAT, Checkers: checkers}
}

// vs is a virtual server 198.18.1.N:80.
func vs(n byte, servers ...*config.RealServer) *config.VirtualServer {
	return &config.VirtualServer{Addr: netip.AddrFrom4([4]byte{198, 18, 1, n}), Port: 80, Family: "inet",
		Protocol: config.TCP, Scheduler: "rr", Method: config.NAT, RealServers: servers}
}

// collector gathers transitions from a running scheduler.
type collector struct {
	mu  sync.Mutex
	got []Transition
}

func (c *collector) run(s *Scheduler, done chan<- struct{}) {
	for t := range s.Transitions() {
		c.mu.Lock()
		c.got = append(c.got, t)
		c.mu.Unlock()
	}
	close(done)
}

func (c *collector) list() []Transition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Transition(nil), c.got...)
}

// startScheduler runs s until the test ends and collects its transitions.
func startScheduler(t *testing.T, s *Scheduler) *collector {
	t.Helper()
	c, stop := runScheduler(t, s)
	t.Cleanup(func() {
		if err := stop(time.Minute); err != nil {
			t.Error(err)
		}
	})
	return c
}

// runScheduler runs s and collects its transitions until stop, which
// cancels the run and returns Run's error, or an error when Run has not
// returned within timeout; the transitions are all in once it returns.
// Call stop once.
func runScheduler(t *testing.T, s *Scheduler) (*collector, func(timeout time.Duration) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	c := &collector{}
	done := make(chan struct{})
	runErr := make(chan error, 1)
	go c.run(s, done)
	go func() { runErr <- s.Run(ctx) }()
	return c, func(timeout time.Duration) error {
		cancel()
		select {
		case err := <-runErr:
			<-done
			if err != nil {
				return fmt.Errorf("Run: %w", err)
			}
			return nil
		case <-time.After(timeout):
			return fmt.Errorf("Run did not return within %v of the cancel", timeout)
		}
	}
}

// ms turns milliseconds into durations.
func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}
