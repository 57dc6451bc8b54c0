package prober

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"golang.org/x/sys/unix"
)

// TestCatchUp: how much of a start's lateness the next round makes up.
func TestCatchUp(t *testing.T) {
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	tests := []struct {
		name            string
		lateness, delay time.Duration
		want            time.Duration
	}{
		{"on time", 0, time.Second, 0},
		{"early (an expedited check)", -ms(5), time.Second, 0},
		{"late, made up in full", ms(3.5), time.Second, ms(3.5)},
		{"late past the cap", ms(300), time.Second, catchUpMax},
		{"a short delay: a tenth of it", ms(15), ms(100), ms(10)},
		{"run again at once", ms(5), 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := catchUp(tc.lateness, tc.delay); got != tc.want {
				t.Errorf("catchUp(%v, %v) = %v, want %v", tc.lateness, tc.delay, got, tc.want)
			}
		})
	}
}

// TestSchedulerCatchUp: a recorded attempt that started late queues the
// next one delay_loop after the end it would have had on time (at most
// catchUpMax earlier than keepalived would); one on time, delay_loop
// after its end, as keepalived does.
func TestSchedulerCatchUp(t *testing.T) {
	tests := []struct {
		name     string
		lateness time.Duration
		want     time.Duration // next due minus the end
	}{
		{"on time", 0, time.Second},
		{"4 ms late", 4 * time.Millisecond, time.Second - 4*time.Millisecond},
		{"a second late (starved)", time.Second, time.Second - catchUpMax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newFakeEnv()
			tm := timing{delayLoop: time.Second, delayBeforeRetry: time.Second}
			s, _ := oneTCPServer(t, env, tm)
			s.mu.Lock()
			defer s.mu.Unlock()
			u := s.queue.next()
			due := s.queue.dueOf(u)
			s.queue.remove(u)
			u.fin.start = due.Add(tc.lateness)
			end := u.fin.start.Add(3 * time.Millisecond)
			s.complete(u, Result{OK: true}, end)
			if got := s.queue.dueOf(u).Sub(end); got != tc.want {
				t.Errorf("next due %v after the end, want %v", got, tc.want)
			}
		})
	}
}

// TestPollReady: the dispatch loop's look at the connector's ready events
// (pollReady, racing the connector's own loop for them) finishes every
// asynchronous attempt exactly once, with its right result, on real
// sockets, and leaves no socket or waiting connect behind.
func TestPollReady(t *testing.T) {
	_, open, closed, stop := connectLab(t)
	if res := mustChecker(t, checkerFor(config.TCPCheck, open, 5*time.Second), CheckerOptions{}).Check(t.Context()); !res.OK {
		t.Fatal(res.Message)
	}
	before := sockets(t)
	const n = 400
	out := make(chan asyncOutcome, n)
	g := newAsyncGroup(t.Context(), func(a attemptRef, res Result, end time.Time) { out <- asyncOutcome{a, res, end} })
	okCk := mustChecker(t, checkerFor(config.TCPCheck, open, 10*time.Second), CheckerOptions{}).(*tcpChecker)
	refusedCk := mustChecker(t, checkerFor(config.TCPCheck, closed, 10*time.Second), CheckerOptions{}).(*tcpChecker)
	buf := make([]unix.EpollEvent, pollBatch)
	polled := 0
	for i := range n {
		ck := okCk
		if i%4 == 3 {
			ck = refusedCk
		}
		ck.checkAsync(g, attemptRef{slot: int64(i), start: time.Now()})
		if i%pollEvery == pollEvery-1 {
			polled += tcpConnector.pollReady(buf)
		}
	}
	seen := make([]bool, n)
	limit := time.After(30 * time.Second)
	for got := 0; got < n; {
		select {
		case o := <-out:
			i := o.ref.slot
			if seen[i] {
				t.Fatalf("attempt %d finished twice", i)
			}
			seen[i] = true
			got++
			if wantOK := i%4 != 3; o.res.OK != wantOK || (!wantOK && !errors.Is(o.res.Err, syscall.ECONNREFUSED)) {
				t.Errorf("attempt %d: OK=%v %q, want OK=%v (refused when not)", i, o.res.OK, o.res.Message, wantOK)
			}
		case <-limit:
			t.Fatalf("%d of %d attempts finished in 30 s", got, n)
		default:
			polled += tcpConnector.pollReady(buf)
		}
	}
	select {
	case o := <-out:
		t.Fatalf("an extra outcome: attempt %d", o.ref.slot)
	case <-time.After(100 * time.Millisecond):
	}
	t.Logf("%d of %d finished by pollReady, the rest by the connector's loop", polled, n)
	checkConnectorIdle(t)
	stop()
	checkNoNewSockets(t, before)
}
