package prober

import (
	"context"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestAnchorStart: the schedule queued by NewScheduler moves by the time
// until Run, except checks expedited meanwhile, which stay due at once.
func TestAnchorStart(t *testing.T) {
	tests := []struct {
		name     string
		gap      time.Duration
		expedite bool // expedite the second unit 1 s after NewScheduler
	}{
		{"run at once", 0, false},
		{"run 5 s later", 5 * time.Second, false},
		{"run 5 s later, one check expedited meanwhile", 5 * time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newFakeEnv()
			tm := timing{delayLoop: time.Minute, warmup: 6 * time.Second}
			cfg := &config.Config{VirtualServers: []*config.VirtualServer{
				vs(1, rs(2, tcpBlock(2, 80, tm)), rs(3, tcpBlock(3, 80, tm)), rs(4, tcpBlock(4, 80, tm))),
			}}
			s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker})
			if err != nil {
				t.Fatal(err)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			before := map[*unit]time.Time{}
			for _, u := range s.plan.units {
				before[u] = s.queue.dueOf(u)
				if d := before[u].Sub(s.queuedAt); d < DefaultStartDelay || d >= DefaultStartDelay+tm.warmup {
					t.Fatalf("first attempt due %v after queueing, want within the start delay plus the warmup", d)
				}
			}
			var fast *unit
			if tc.expedite {
				fast = s.plan.byKey[cfg.VirtualServers[0].RealServers[1].Key(cfg.VirtualServers[0])].units[0]
				at := s.queuedAt.Add(time.Second)
				if s.queue.dueOf(fast).After(at) { // as Expedite does, at a chosen time
					s.queue.schedule(fast, at)
					s.expeditedEarly(fast)
				}
			}
			run := s.queuedAt.Add(tc.gap)
			s.anchorStart(run)
			for u, b := range before {
				want := b.Add(tc.gap)
				if u == fast {
					want = run
				}
				if got := s.queue.dueOf(u); !got.Equal(want) {
					t.Errorf("%s due %v after Run, want %v", u.checker, got.Sub(run), want.Sub(run))
				}
			}
			var last time.Time // the heap still pops in due order
			for n := s.queue.Len(); n > 0; n-- {
				u := s.queue.popDue(run.Add(time.Hour))
				if u == nil || s.queue.dueOf(u).Before(last) {
					t.Fatalf("queue out of order after the shift")
				}
				last = s.queue.dueOf(u)
			}
		})
	}
}

// firstCheck reports the first attempt of any check on a channel.
type firstCheck struct {
	Checker
	started chan<- time.Time
}

func (f firstCheck) Check(ctx context.Context) Result {
	select {
	case f.started <- time.Now():
	default:
	}
	return f.Checker.Check(ctx)
}

// TestFirstAttemptCountsFromRun: a scheduler started some time after it
// was built (lvsprobe loads the SYN prober's eBPF programs in between)
// still waits its start delay before the first attempt, as keepalived
// does from the start of its event loop. Before, the attempts that fell
// due meanwhile all started the moment Run began.
func TestFirstAttemptCountsFromRun(t *testing.T) {
	env := newFakeEnv()
	started := make(chan time.Time, 1)
	build := func(c *config.Checker, o CheckerOptions) (Checker, error) {
		ck, err := env.newChecker(c, o)
		return firstCheck{Checker: ck, started: started}, err
	}
	tm := timing{delayLoop: time.Minute}
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, rs(2, tcpBlock(2, 80, tm)))}}
	const startDelay = 300 * time.Millisecond
	s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: build, StartDelay: startDelay})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * startDelay) // the time lvsprobe spends loading between NewScheduler and Run (not a synchronisation)
	runAt := time.Now()
	startScheduler(t, s)
	select {
	case at := <-started:
		if d := at.Sub(runAt); d < startDelay {
			t.Fatalf("first attempt %v after Run, want at least the start delay %v", d, startDelay)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt within 10 s")
	}
}
