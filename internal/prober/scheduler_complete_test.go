package prober

import (
	"sync"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestFinishRecordsEveryResultOnce: 2,000 attempts finishing at once from
// their own goroutines are each recorded exactly once (attempt count,
// unit queued again, slot of the in-flight limit given back), whichever
// goroutine does the recording, and none is left on the list.
func TestFinishRecordsEveryResultOnce(t *testing.T) {
	const nvs, nrs = 8, 250
	env := newFakeEnv()
	tm := timing{delayLoop: time.Minute, retry: 1}
	cfg := &config.Config{}
	for v := range nvs {
		var servers []*config.RealServer
		for r := range nrs {
			servers = append(servers, rs(byte(r+1), tcpBlock(byte(r+1), uint16(1000+v), tm)))
		}
		cfg.VirtualServers = append(cfg.VirtualServers, vs(byte(v+1), servers...))
	}
	n := nvs * nrs
	s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker, StartDelay: -1, MaxConcurrent: n,
		StaticConcurrency: true, FirstVerdict: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Stats().Checks; got != n {
		t.Fatalf("%d checks, want %d", got, n)
	}
	for round := range 4 {
		// Take every unit off the queue, as the dispatcher does.
		var units []*unit
		s.mu.Lock()
		for u := s.queue.popDue(time.Now().Add(time.Hour)); u != nil; u = s.queue.popDue(time.Now().Add(time.Hour)) {
			units = append(units, u)
		}
		s.mu.Unlock()
		if len(units) != n {
			t.Fatalf("round %d: %d units due, want %d", round, len(units), n)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, u := range units {
			slot, ok := s.conc.tryAcquire(time.Now())
			if !ok {
				t.Fatal("no slot")
			}
			wg.Go(func() {
				<-start
				t0 := time.Now()
				s.conc.release(slot, 0, t0) // as attempt does
				s.finish(u, Result{OK: (round+i)%3 != 0, Duration: time.Millisecond}, t0, t0.Add(time.Millisecond))
			})
		}
		close(start)
		wg.Wait()
		if h := s.doneHead.Load(); h != nil {
			t.Fatalf("round %d: results left on the list", round)
		}
		if got, want := s.Stats().Attempts, uint64((round+1)*n); got != want {
			t.Fatalf("round %d: %d attempts recorded, want %d", round, got, want)
		}
		s.mu.Lock()
		queued := s.queue.Len()
		s.mu.Unlock()
		if queued != n {
			t.Fatalf("round %d: %d units queued again, want %d", round, queued, n)
		}
		s.conc.mu.Lock()
		inflight := s.conc.inflight
		s.conc.mu.Unlock()
		if inflight != 0 {
			t.Fatalf("round %d: %d slots of the in-flight limit not given back", round, inflight)
		}
	}
}
