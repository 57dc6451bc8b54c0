package prober

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// starvedCPU models a director whose CPU is shared by every attempt in
// flight: an attempt takes perAttempt times the number in flight when it
// starts, and fails when that reaches its timeout, as a whole-exchange
// connect_timeout does on a starved CPU. Its capacity is 1/perAttempt
// attempts per second however many run at once. Pure logic, no I/O.
type starvedCPU struct {
	perAttempt time.Duration
	inflight   atomic.Int32
}

func (c *starvedCPU) newChecker(b *config.Checker, _ CheckerOptions) (Checker, error) {
	return &starvedChecker{cpu: c, ep: netip.AddrPortFrom(b.ConnectIP, b.ConnectPort).String(), timeout: b.ConnectTimeout}, nil
}

type starvedChecker struct {
	cpu     *starvedCPU
	ep      string
	timeout time.Duration
}

func (f *starvedChecker) Key() string    { return "starved " + f.ep }
func (f *starvedChecker) String() string { return "starved check " + f.ep }

func (f *starvedChecker) Check(ctx context.Context) Result {
	n := f.cpu.inflight.Add(1)
	defer f.cpu.inflight.Add(-1)
	d := time.Duration(n) * f.cpu.perAttempt
	timedOut := d >= f.timeout
	d = min(d, f.timeout)
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return Result{Err: ctx.Err()}
	}
	if timedOut {
		return Result{Message: "connect " + f.ep + ": timeout"}
	}
	return Result{OK: true, Message: "connect " + f.ep + ": ok"}
}

// TestSchedulerStarvedCPU runs 200 healthy real servers due every second
// on a CPU that completes 100 attempts a second: without the adaptive limit
// nearly every attempt times out and real servers go down; with it none
// does, checks run late instead, and the CPU stays busy.
func TestSchedulerStarvedCPU(t *testing.T) {
	const servers = 200
	const run = 30 * time.Second
	tests := []struct {
		name     string
		static   bool
		failures func(attempts, failures uint64) error
	}{
		{"static concurrency: most attempts time out", true, func(a, f uint64) error {
			if f*2 < a {
				return fmt.Errorf("%d of %d attempts failed, want most", f, a)
			}
			return nil
		}},
		{"adaptive limit: none does", false, func(a, f uint64) error {
			if f != 0 {
				return fmt.Errorf("%d of %d attempts failed, want none", f, a)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cpu := &starvedCPU{perAttempt: 10 * time.Millisecond}
				tm := timing{delayLoop: time.Second, retry: 1, delayBeforeRetry: time.Second}
				var rss []*config.RealServer
				for i := range servers {
					rss = append(rss, rs(byte(1+i), tcpBlock(byte(1+i), 80, tm)))
				}
				cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, rss...)}}
				s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: cpu.newChecker, Rate: -1, StaticConcurrency: tt.static})
				if err != nil {
					t.Fatal(err)
				}
				c := startScheduler(t, s)
				time.Sleep(run)
				synctest.Wait()
				st := s.Stats()
				t.Logf("attempts %d failures %d limit %d transitions %d lateness p50 %v", st.Attempts, st.Failures, s.ConcurrencyLimit(), len(c.list()), s.Lateness().Quantile(0.5))
				if err := tt.failures(st.Attempts, st.Failures); err != nil {
					t.Error(err)
				}
				if tt.static {
					if len(c.list()) == 0 {
						t.Error("no transitions: healthy real servers should flap without the limit")
					}
					return
				}
				// Capacity is 100 attempts/s from 1 s on; ask for well over
				// half of it.
				if min := uint64(run/time.Second-1) * 100 / 2; st.Attempts < min {
					t.Errorf("%d attempts in %v, want at least %d", st.Attempts, run, min)
				}
				if got := c.list(); len(got) != 0 {
					t.Errorf("%d transitions (first %+v), want none: every real server is healthy", len(got), got[0])
				}
				if l := s.ConcurrencyLimit(); l < limitFloor || l > 52 {
					t.Errorf("limit %d, want between %d and 52 (attempts take half their timeout at 50 in flight)", l, limitFloor)
				}
				if q := s.Lateness().Quantile(0.5); q < 400*time.Millisecond {
					t.Errorf("median lateness %v, want checks to run late (demand is 2× capacity)", q)
				}
			})
		})
	}
}
