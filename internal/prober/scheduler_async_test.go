package prober

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// asyncOutcome is what an asynchronous attempt handed to its group's sink.
type asyncOutcome struct {
	ref attemptRef
	res Result
	end time.Time
}

// checkAsyncOnce runs one attempt of ck through its asynchronous path and
// returns its result.
func checkAsyncOnce(t *testing.T, ck Checker) Result {
	t.Helper()
	out := make(chan Result, 1)
	g := newAsyncGroup(t.Context(), func(_ attemptRef, res Result, _ time.Time) { out <- res })
	ck.(asyncChecker).checkAsync(g, attemptRef{start: time.Now()})
	return <-out
}

// heapLen is how many asynchronous attempts the connector's deadline heap
// holds.
func heapLen() int {
	tcpConnector.mu.Lock()
	defer tcpConnector.mu.Unlock()
	return len(tcpConnector.timers)
}

// checkConnectorIdle fails t if the shared connector still holds a
// connect or a deadline: every attempt must have ended.
func checkConnectorIdle(t *testing.T) {
	t.Helper()
	if n := waitingConnects(); n != 0 {
		t.Errorf("%d connects still waiting", n)
	}
	if n := heapLen(); n != 0 {
		t.Errorf("%d attempts still in the deadline heap", n)
	}
}

// TestAsyncConnect runs TCP_CHECK attempts through the asynchronous path
// on real sockets (a real server in its own namespace, threaded NAPI so
// connects really are pending): a connect that completes, a refused one,
// three to a black-holed server with their connect_timeouts given out of
// order (each fails at its own deadline, earliest first: the heap moves
// the loop's deadline earlier), one pending when the group's context ends
// (it ends at once with the context's error) and one started after that
// (refused at once). No socket, waiting entry or heap entry is left.
func TestAsyncConnect(t *testing.T) {
	rs, open, closed, stop := connectLab(t)
	if res := mustChecker(t, checkerFor(config.TCPCheck, open, 5*time.Second), CheckerOptions{}).Check(t.Context()); !res.OK {
		t.Fatal(res.Message)
	}
	before := sockets(t)
	out := make(chan asyncOutcome, 16)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	g := newAsyncGroup(ctx, func(a attemptRef, res Result, end time.Time) { out <- asyncOutcome{a, res, end} })
	start := func(ap netip.AddrPort, timeout time.Duration, id int64) {
		ck := mustChecker(t, checkerFor(config.TCPCheck, ap, timeout), CheckerOptions{}).(*tcpChecker)
		ck.checkAsync(g, attemptRef{slot: id, start: time.Now()})
	}
	next := func() asyncOutcome {
		t.Helper()
		select {
		case o := <-out:
			return o
		case <-time.After(20 * time.Second):
			t.Fatal("no outcome in 20 s")
			return asyncOutcome{}
		}
	}

	start(open, 5*time.Second, 1)
	start(closed, 5*time.Second, 2)
	got := map[int64]Result{}
	for range 2 {
		o := next()
		got[o.ref.slot] = o.res
	}
	if r := got[1]; !r.OK {
		t.Errorf("open port: %q, want connected", r.Message)
	}
	if r := got[2]; r.OK || !errors.Is(r.Err, syscall.ECONNREFUSED) {
		t.Errorf("closed port: OK=%v %q, want ECONNREFUSED", r.OK, r.Message)
	}

	rs.BlackHole(t)
	timeouts := map[int64]time.Duration{3: 600 * time.Millisecond, 4: 200 * time.Millisecond, 5: 400 * time.Millisecond}
	for _, id := range []int64{3, 4, 5} {
		start(open, timeouts[id], id)
	}
	for _, want := range []int64{4, 5, 3} {
		o := next()
		if o.ref.slot != want {
			t.Errorf("attempt %d ended before attempt %d (timeouts %v)", o.ref.slot, want, timeouts)
		}
		if o.res.OK || !errors.Is(o.res.Err, os.ErrDeadlineExceeded) {
			t.Errorf("attempt %d: OK=%v %q, want a deadline error", o.ref.slot, o.res.OK, o.res.Message)
		}
		if took := o.end.Sub(o.ref.start); took < timeouts[o.ref.slot] {
			t.Errorf("attempt %d failed after %v, before its connect_timeout %v", o.ref.slot, took, timeouts[o.ref.slot])
		}
	}

	start(open, time.Hour, 6)
	if n := tcpConnector.pendingAsync(g); n != 1 {
		t.Fatalf("%d attempts pending, want 1", n)
	}
	cancel()
	if o := next(); o.ref.slot != 6 || o.res.OK || !errors.Is(o.res.Err, context.Canceled) {
		t.Errorf("cancelled attempt %d: OK=%v %q, want context.Canceled", o.ref.slot, o.res.OK, o.res.Message)
	}
	start(open, time.Hour, 7)
	if o := next(); o.ref.slot != 7 || o.res.OK || !errors.Is(o.res.Err, context.Canceled) {
		t.Errorf("attempt started after the cancel %d: OK=%v %q, want context.Canceled", o.ref.slot, o.res.OK, o.res.Message)
	}
	checkConnectorIdle(t)
	stop()
	checkNoNewSockets(t, before)
}

// TestDeadlineHeap checks the heap's order under pushes and removals from
// anywhere.
func TestDeadlineHeap(t *testing.T) {
	base := time.Now()
	var h deadlineHeap
	ws := make([]*connectWait, 50)
	for i := range ws {
		ws[i] = &connectWait{deadline: base.Add(time.Duration((i*37)%50) * time.Millisecond)}
		h.push(ws[i])
	}
	for i := 0; i < len(ws); i += 3 {
		h.remove(ws[i])
		h.remove(ws[i]) // a second removal changes nothing
	}
	var last time.Time
	n := 0
	for len(h) > 0 {
		w := h.pop()
		if w.deadline.Before(last) {
			t.Fatalf("popped %v after %v", w.deadline.Sub(base), last.Sub(base))
		}
		last = w.deadline
		n++
	}
	if want := len(ws) - (len(ws)+2)/3; n != want {
		t.Errorf("popped %d, want %d", n, want)
	}
}

// asyncLab runs a scheduler on real servers: A listening (up), B's port
// closed (refused), C black-holed, each checked by one TCP_CHECK with
// delay_loop 1 and the given connect_timeout for C.
type asyncLab struct {
	a, b, c *config.RealServer
	n       *testnet.Net
}

func newAsyncLab(t *testing.T, cTimeout time.Duration) *asyncLab {
	n := testnet.New(t, testnet.Options{RealServers: 2})
	good, black := n.RealServers[0], n.RealServers[1]
	open, closed, stop := threadedPorts(t, good)
	t.Cleanup(stop)
	black.BlackHole(t)
	tm := timing{delayLoop: time.Second}
	l := &asyncLab{a: endpointServer(open, tm, 1), b: endpointServer(closed, tm, 2),
		c: endpointServer(netip.AddrPortFrom(black.Addr, 80), tm, 3), n: n}
	l.c.Checkers[0].ConnectTimeout = cTimeout
	return l
}

// waitFor polls cond (there is no event to wait for) for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-limit:
			t.Fatalf("%s: not within 20 s", what)
		}
	}
}

// TestSchedulerAsyncTCP runs TCP_CHECK units through the asynchronous path
// (no goroutine per attempt): the refused and the black-holed real servers
// go down, the listening one stays up; ending Run's context with an
// attempt pending on a connect_timeout of a minute ends it at once, and
// leaves no socket, waiting connect or slot behind.
func TestSchedulerAsyncTCP(t *testing.T) {
	l := newAsyncLab(t, time.Minute)
	before := sockets(t)
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, l.a, l.b, l.c)}}
	s, err := NewScheduler(cfg, SchedulerOptions{StartDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range s.plan.units {
		if !u.async {
			t.Fatalf("%s: not asynchronous", u.checker)
		}
	}
	c, stop := runScheduler(t, s)

	waitFor(t, "B down and C's attempt pending", func() bool {
		return s.Stats().Down == 1 && s.Stats().InFlight >= 1 && waitingConnects() >= 1
	})
	st := s.Stats()
	if st.Attempts < 2 {
		t.Errorf("%d attempts recorded, want A's and B's", st.Attempts)
	}
	if err := stop(20 * time.Second); err != nil {
		t.Fatalf("%v (C's connect_timeout is a minute)", err)
	}
	for _, tr := range c.list() {
		if tr.Key.Addr == l.a.Addr && tr.Key.Port == l.a.Port {
			t.Errorf("A (listening) changed: %+v", tr)
		}
		if tr.Key.Addr == l.c.Addr {
			t.Errorf("C (black-holed, its attempt cancelled) changed: %+v", tr)
		}
	}
	if n := s.conc.inFlight(); n != 0 {
		t.Errorf("%d slots still held", n)
	}
	checkConnectorIdle(t)
	checkNoNewSockets(t, before)
}

// TestSchedulerAsyncReload removes, by a reload, a unit whose attempt is
// pending on a black-holed server: the attempt ends at its connect_timeout
// and is discarded (no transition for the removed real server, no
// recorded failure), and it leaves no socket, waiting connect or slot.
func TestSchedulerAsyncReload(t *testing.T) {
	l := newAsyncLab(t, 500*time.Millisecond)
	before := sockets(t)
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, l.a, l.c)}}
	s, err := NewScheduler(cfg, SchedulerOptions{StartDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	c, stop := runScheduler(t, s)

	waitFor(t, "C's attempt pending", func() bool { return waitingConnects() >= 1 })
	if err := s.Update(&config.Config{VirtualServers: []*config.VirtualServer{vs(1, l.a)}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "C's attempt ended", func() bool { return heapLen() == 0 && waitingConnects() == 0 })
	waitFor(t, "A checked twice more", func() bool { return s.Stats().Attempts >= 2 })
	if st := s.Stats(); st.Failures != 0 || st.Down != 0 || st.RealServers != 1 {
		t.Errorf("after the reload: %+v, want no failure recorded, one real server, up", st)
	}
	if err := stop(time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, tr := range c.list() {
		t.Errorf("unexpected transition: %+v", tr)
	}
	if n := s.conc.inFlight(); n != 0 {
		t.Errorf("%d slots still held", n)
	}
	checkNoNewSockets(t, before)
}

// TestAsyncConnectorStopped: if the connector's loop ever ended, an
// asynchronous attempt pending then fails at once with
// errConnectorStopped, and so does every later one (they have no timer of
// their own: without this they would hang, and health go stale). The
// loop is not really stopped here: stopAsync is what its exit runs.
func TestAsyncConnectorStopped(t *testing.T) {
	rs, open, _, stop := connectLab(t)
	defer stop()
	rs.BlackHole(t)
	out := make(chan asyncOutcome, 4)
	g := newAsyncGroup(t.Context(), func(a attemptRef, res Result, end time.Time) { out <- asyncOutcome{a, res, end} })
	ck := mustChecker(t, checkerFor(config.TCPCheck, open, time.Hour), CheckerOptions{}).(*tcpChecker)
	ck.checkAsync(g, attemptRef{slot: 1, start: time.Now()})
	if n := tcpConnector.pendingAsync(g); n != 1 {
		t.Fatalf("%d attempts pending, want 1", n)
	}
	t.Cleanup(func() {
		tcpConnector.mu.Lock()
		tcpConnector.stopped = nil
		tcpConnector.mu.Unlock()
	})
	tcpConnector.stopAsync(errConnectorStopped)
	ck.checkAsync(g, attemptRef{slot: 2, start: time.Now()})
	for _, want := range []int64{1, 2} {
		select {
		case o := <-out:
			if o.ref.slot != want || o.res.OK || !errors.Is(o.res.Err, errConnectorStopped) {
				t.Errorf("attempt %d (want %d): OK=%v %q, want errConnectorStopped", o.ref.slot, want, o.res.OK, o.res.Message)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("attempt %d: no outcome in 10 s", want)
		}
	}
	if n := heapLen(); n != 0 {
		t.Errorf("%d attempts still in the deadline heap", n)
	}
}
