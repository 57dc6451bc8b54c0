package prober

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// The scheduler tests run in a synctest bubble: time is virtual and moves
// only when every goroutine is blocked, so exact instants can be asserted
// without sleeping for real.

func TestSchedulerRetryLadder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		tm := timing{delayLoop: time.Second, retry: 2, delayBeforeRetry: 200 * time.Millisecond}
		s, cfg := oneTCPServer(t, env, tm)
		c := startScheduler(t, s)
		ep := "198.18.0.1:80"

		time.Sleep(3500 * time.Millisecond)
		env.setFail(ep, true)
		time.Sleep(3400 * time.Millisecond) // to 6.9 s
		env.setFail(ep, false)
		time.Sleep(1600 * time.Millisecond) // to 8.5 s
		synctest.Wait()

		// Start delay 1 s, then a delay_loop apart while up; three failures
		// 200 ms apart take it down; the ladder repeats while down; the
		// first success brings it back.
		want := ms(1000, 2000, 3000, 4000, 4200, 4400, 5400, 5600, 5800, 6800, 7000, 8000)
		if got := env.starts(ep); !slices.Equal(got, want) {
			t.Errorf("attempts at %v, want %v", got, want)
		}
		key := cfg.VirtualServers[0].RealServers[0].Key(cfg.VirtualServers[0])
		got := c.list()
		if len(got) != 2 || got[0].Key != key || got[0].Up || got[1].Key != key || !got[1].Up {
			t.Fatalf("transitions %+v, want down then up for %v", got, key)
		}
		if d := got[0].At.Sub(env.t0); d != 4400*time.Millisecond {
			t.Errorf("down at %v, want 4.4s", d)
		}
		if d := got[1].At.Sub(env.t0); d != 7000*time.Millisecond {
			t.Errorf("up at %v, want 7s", d)
		}
		if !strings.Contains(got[0].Reason, "refused") {
			t.Errorf("down reason %q does not carry the check's message", got[0].Reason)
		}
	})
}

func TestSchedulerInitialState(t *testing.T) {
	tests := []struct {
		name   string
		alpha  bool
		fail   bool
		wantUp []bool // transitions delivered
		health bool   // health before the first check
	}{
		{"up by default, one failure takes it down", false, true, []bool{false}, true},
		{"up by default, a success changes nothing", false, false, nil, true},
		{"alpha starts down, a success brings it up", true, false, []bool{true}, false},
		{"alpha starts down, a failure changes nothing", true, true, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				env := newFakeEnv()
				env.setFail("198.18.0.1:80", tt.fail)
				tm := timing{delayLoop: time.Second, retry: 3, delayBeforeRetry: 100 * time.Millisecond, alpha: tt.alpha}
				s, _ := oneTCPServer(t, env, tm)
				if h := s.Health(); len(h) != 1 || h[0].Up != tt.health {
					t.Fatalf("initial health %+v, want up=%t", h, tt.health)
				}
				c := startScheduler(t, s)
				time.Sleep(1500 * time.Millisecond)
				synctest.Wait()
				var got []bool
				for _, tr := range c.list() {
					got = append(got, tr.Up)
				}
				if !slices.Equal(got, tt.wantUp) {
					t.Errorf("transitions %v, want %v", got, tt.wantUp)
				}
			})
		})
	}
}

func TestSchedulerSharedCheck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		tm := timing{delayLoop: time.Second, retry: 1, delayBeforeRetry: 100 * time.Millisecond}
		// The same real server, with the same check, under three virtual servers.
		cfg := &config.Config{VirtualServers: []*config.VirtualServer{
			vs(1, rs(1, tcpBlock(1, 80, tm))),
			vs(2, rs(1, tcpBlock(1, 80, tm))),
			vs(3, rs(1, tcpBlock(1, 80, tm))),
		}}
		s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker})
		if err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.Checks != 1 || st.RealServers != 3 {
			t.Fatalf("stats %+v, want 1 check for 3 real servers", st)
		}
		c := startScheduler(t, s)
		time.Sleep(2500 * time.Millisecond)
		env.setFail("198.18.0.1:80", true)
		time.Sleep(time.Second)
		synctest.Wait()
		if got := env.starts("198.18.0.1:80"); !slices.Equal(got, ms(1000, 2000, 3000, 3100)) {
			t.Errorf("attempts %v: the shared check must run once per round", got)
		}
		got := c.list()
		if len(got) != 3 {
			t.Fatalf("%d transitions %+v, want one per virtual server", len(got), got)
		}
		seen := map[string]bool{}
		for _, tr := range got {
			if tr.Up {
				t.Errorf("unexpected up transition %+v", tr)
			}
			seen[tr.Key.VirtualServer] = true
		}
		if len(seen) != 3 {
			t.Errorf("transitions cover %v, want 3 virtual servers", seen)
		}
	})
}

func TestSchedulerAllCheckersMustPass(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		tm := timing{delayLoop: time.Second, delayBeforeRetry: time.Second}
		cfg := &config.Config{VirtualServers: []*config.VirtualServer{
			vs(1, rs(1, tcpBlock(1, 80, tm), tcpBlock(1, 81, tm))),
		}}
		s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker})
		if err != nil {
			t.Fatal(err)
		}
		c := startScheduler(t, s)
		step := func(ep string, fail bool) {
			env.setFail(ep, fail)
			time.Sleep(time.Second)
			synctest.Wait()
		}
		time.Sleep(1500 * time.Millisecond)
		step("198.18.0.1:80", true)  // one down: the server goes down
		step("198.18.0.1:81", true)  // both down: no news
		step("198.18.0.1:80", false) // one back: still down
		step("198.18.0.1:81", false) // both back: up
		var got []bool
		for _, tr := range c.list() {
			got = append(got, tr.Up)
		}
		if !slices.Equal(got, []bool{false, true}) {
			t.Fatalf("transitions %v, want [false true]", got)
		}
		h := s.Health()
		if len(h) != 1 || !h[0].Up || len(h[0].Checkers) != 2 {
			t.Fatalf("health %+v", h)
		}
	})
}

func TestSchedulerWarmupStaggers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		tm := timing{delayLoop: time.Second, delayBeforeRetry: time.Second, warmup: time.Second}
		var servers []*config.RealServer
		for p := range uint16(200) {
			servers = append(servers, rs(1, tcpBlock(1, 1000+p, tm)))
		}
		cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, servers...)}}
		s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker, StartDelay: -1})
		if err != nil {
			t.Fatal(err)
		}
		startScheduler(t, s)
		// rand.N(warmup) is below 1 s by at most 1 ns: wait until then.
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		firsts := map[time.Duration]bool{}
		for p := range uint16(200) {
			st := env.starts(netipPort(1000 + p))
			if len(st) != 1 {
				t.Fatalf("port %d: %d attempts in the first warmup, want 1", 1000+p, len(st))
			}
			firsts[st[0]] = true
		}
		if len(firsts) < 150 {
			t.Errorf("only %d distinct first instants for 200 checks: not staggered", len(firsts))
		}
	})
}

func netipPort(p uint16) string { return "198.18.0.1:" + strconv.Itoa(int(p)) }

func TestSchedulerConcurrencyLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		env.hold = 50 * time.Millisecond // under parkAfter: every attempt counts
		tm := timing{delayLoop: 10 * time.Second, delayBeforeRetry: time.Second}
		var servers []*config.RealServer
		for p := range uint16(10) {
			servers = append(servers, rs(1, tcpBlock(1, 1000+p, tm)))
		}
		cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, servers...)}}
		s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker, MaxConcurrent: 2, Rate: -1})
		if err != nil {
			t.Fatal(err)
		}
		startScheduler(t, s)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if m := env.maxInflight.Load(); m != 2 {
			t.Errorf("at most %d checks in flight, want exactly the limit 2", m)
		}
		// Ten checks due at 1 s, two at a time, 50 ms each: the last pair
		// starts 200 ms late.
		l := s.Lateness()
		if l.Count != 10 || l.Max != 200*time.Millisecond {
			t.Errorf("lateness count %d max %v, want 10 and 200ms", l.Count, l.Max)
		}
		if q := l.Quantile(0.5); q < 100*time.Millisecond || q > 250*time.Millisecond {
			t.Errorf("median lateness %v, want about 200ms", q)
		}
	})
}

func TestSchedulerRateCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		tm := timing{delayLoop: 10 * time.Second, delayBeforeRetry: time.Second}
		var servers []*config.RealServer
		for p := range uint16(20) {
			servers = append(servers, rs(1, tcpBlock(1, 1000+p, tm)))
		}
		cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, servers...)}}
		s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker, Rate: 10, Burst: 1})
		if err != nil {
			t.Fatal(err)
		}
		startScheduler(t, s)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		var all []time.Duration
		for p := range uint16(20) {
			all = append(all, env.starts(netipPort(1000+p))...)
		}
		slices.Sort(all)
		if len(all) != 20 {
			t.Fatalf("%d attempts, want 20", len(all))
		}
		for i := 1; i < len(all); i++ {
			if gap := all[i] - all[i-1]; gap < 99*time.Millisecond {
				t.Fatalf("attempts %d and %d %v apart, want ≥ 100ms at 10/s", i-1, i, gap)
			}
		}
	})
}

func TestSchedulerUpdate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		tm := timing{delayLoop: time.Second, delayBeforeRetry: 100 * time.Millisecond}
		a, b, c := tcpBlock(1, 80, tm), tcpBlock(2, 80, tm), tcpBlock(3, 80, tm)
		cfg1 := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, rs(1, a), rs(2, b))}}
		s, err := NewScheduler(cfg1, SchedulerOptions{NewChecker: env.newChecker})
		if err != nil {
			t.Fatal(err)
		}
		col := startScheduler(t, s)
		env.setFail("198.18.0.2:80", true)
		time.Sleep(2500 * time.Millisecond) // rs 2 went down at 1 s
		// Reload: rs 1 unchanged, rs 2 gone, rs 3 new; rs 1 gains a
		// second, failing block (the former check of rs 2) and goes down.
		rs1 := rs(1, tcpBlock(1, 80, tm), tcpBlock(2, 80, tm))
		cfg2 := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, rs1, rs(3, c))}}
		if err := s.Update(cfg2); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // to 5.5 s
		synctest.Wait()
		if got := env.starts("198.18.0.1:80"); !slices.Equal(got, ms(1000, 2000, 3000, 4000, 5000)) {
			t.Errorf("unchanged check restarted: attempts %v", got)
		}
		if got := env.starts("198.18.0.2:80"); !slices.Equal(got, ms(1000, 2000, 3000, 4000, 5000)) {
			t.Errorf("carried-over check: attempts %v", got)
		}
		if got := env.starts("198.18.0.3:80"); !slices.Equal(got, ms(3500, 4500, 5500)) {
			t.Errorf("new check: attempts %v, want start delay after the reload", got)
		}
		tr := col.list()
		if len(tr) != 2 || tr[0].Key.Addr.String() != "198.18.0.2" || tr[0].Up ||
			tr[1].Key.Addr.String() != "198.18.0.1" || tr[1].Up || tr[1].Reason != "configuration reloaded" {
			t.Fatalf("transitions %+v", tr)
		}
		// Removing a check stops it.
		cfg3 := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, rs(3, c))}}
		if err := s.Update(cfg3); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if got := env.starts("198.18.0.1:80"); len(got) != 5 {
			t.Errorf("removed check still runs: attempts %v", got)
		}
		if st := s.Stats(); st.Checks != 1 || st.RealServers != 1 {
			t.Errorf("stats after removal %+v", st)
		}
	})
}

func TestSchedulerUpdateErrorKeepsOld(t *testing.T) {
	env := newFakeEnv()
	tm := timing{delayLoop: time.Second, delayBeforeRetry: time.Second}
	s, _ := oneTCPServer(t, env, tm)
	bad := tcpBlock(2, 80, tm)
	bad.Type = config.MiscCheck
	err := s.Update(&config.Config{VirtualServers: []*config.VirtualServer{vs(1, rs(2, bad))}})
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "test.conf:") {
		t.Fatalf("Update error %v, want ErrUnsupported with the block's position", err)
	}
	if h := s.Health(); len(h) != 1 || h[0].Key.Addr.String() != "198.18.0.1" {
		t.Fatalf("health after a failed update %+v, want the old configuration", h)
	}
	if _, err := NewScheduler(&config.Config{VirtualServers: []*config.VirtualServer{vs(1, rs(2, bad))}},
		SchedulerOptions{NewChecker: env.newChecker}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("NewScheduler error %v, want ErrUnsupported", err)
	}
}

func TestSchedulerCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		env.hold = time.Hour // an attempt that only ctx ends
		tm := timing{delayLoop: time.Second, delayBeforeRetry: time.Second}
		s, _ := oneTCPServer(t, env, tm)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if n := env.inflight.Load(); n != 1 {
			t.Fatalf("%d attempts in flight, want 1", n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		if _, ok := <-s.Transitions(); ok {
			t.Fatal("Transitions not closed after Run returned")
		}
		if n := env.inflight.Load(); n != 0 {
			t.Fatalf("Run returned with %d attempts in flight", n)
		}
		if h := s.Health(); !h[0].Up {
			t.Error("a cancelled attempt counted as a failure")
		}
		if err := s.Run(t.Context()); !errors.Is(err, ErrRunning) {
			t.Errorf("second Run: %v, want ErrRunning", err)
		}
	})
}

func TestSchedulerFirstVerdict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		alpha := timing{delayLoop: time.Second, retry: 1, delayBeforeRetry: 100 * time.Millisecond, alpha: true}
		plain := timing{delayLoop: time.Second, retry: 1, delayBeforeRetry: 100 * time.Millisecond}
		// rs 1: alpha and failing (starts down, stays down); rs 2: plain and
		// passing (starts up, stays up); rs 3: two checks, the second
		// warming up later, so its verdict waits for both.
		cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1,
			rs(1, tcpBlock(1, 80, alpha)),
			rs(2, tcpBlock(2, 80, plain)),
			rs(3, tcpBlock(3, 80, plain), tcpBlock(3, 81, timing{delayLoop: 5 * time.Second, delayBeforeRetry: time.Second, warmup: 0})),
		)}}
		env.setFail("198.18.0.1:80", true)
		s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker, FirstVerdict: true})
		if err != nil {
			t.Fatal(err)
		}
		c := startScheduler(t, s)
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		got := map[string]bool{}
		for _, tr := range c.list() {
			if _, dup := got[tr.Key.Addr.String()]; dup {
				t.Errorf("second report for %v: %+v", tr.Key, tr)
			}
			got[tr.Key.Addr.String()] = tr.Up
		}
		want := map[string]bool{"198.18.0.1": false, "198.18.0.2": true, "198.18.0.3": true}
		if len(got) != len(want) {
			t.Fatalf("reports %v, want %v", got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s reported up=%t, want %t", k, got[k], v)
			}
		}
	})
}

// oneTCPServer is a scheduler over one virtual server with one real
// server checked by TCP_CHECK on port 80 with timing tm, its checks run
// by env, and the config it was built from.
func oneTCPServer(t *testing.T, env *fakeEnv, tm timing) (*Scheduler, *config.Config) {
	t.Helper()
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, rs(1, tcpBlock(1, 80, tm)))}}
	s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker})
	if err != nil {
		t.Fatal(err)
	}
	return s, cfg
}
