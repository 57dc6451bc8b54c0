package prober

import (
	"sort"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestExpediteAheadOfBacklog: when checks already due wait in the queue
// (a starved scheduler), a suspected endpoint's check goes first, not
// behind them; with none waiting it is due now.
func TestExpediteAheadOfBacklog(t *testing.T) {
	env := newFakeEnv()
	tm := timing{delayLoop: time.Minute}
	cfg := &config.Config{VirtualServers: []*config.VirtualServer{
		vs(1, rs(2, tcpBlock(2, 80, tm)), rs(3, tcpBlock(3, 80, tm)), rs(4, tcpBlock(4, 80, tm)), rs(5, tcpBlock(5, 80, tm))),
	}}
	s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker})
	if err != nil {
		t.Fatal(err)
	}
	var units []*unit
	for _, u := range s.plan.units {
		units = append(units, u)
	}
	sort.Slice(units, func(i, j int) bool { return units[i].endpoint().Compare(units[j].endpoint()) < 0 })
	if len(units) != 4 {
		t.Fatalf("%d units, want 4", len(units))
	}
	suspect := units[3]

	// No backlog: due now.
	now := time.Now()
	s.mu.Lock()
	for _, u := range units {
		s.queue.schedule(u, now.Add(time.Minute))
	}
	s.mu.Unlock()
	if n := s.Expedite(suspect.endpoint(), "test"); n != 1 {
		t.Fatalf("expedited %d checks, want 1", n)
	}
	s.mu.Lock()
	if d := s.queue.dueOf(suspect); d.Before(now) || d.After(time.Now()) {
		t.Errorf("without a backlog due %v after the call's start, want now", d.Sub(now))
	}

	// A backlog of three checks 100-300 ms late: the suspect goes first.
	now = time.Now()
	for i, u := range units[:3] {
		s.queue.schedule(u, now.Add(-time.Duration(300-100*i)*time.Millisecond))
	}
	s.queue.schedule(suspect, now.Add(time.Minute))
	s.mu.Unlock()
	s.Expedite(suspect.endpoint(), "test")
	s.mu.Lock()
	defer s.mu.Unlock()
	if first := s.queue.popDue(time.Now()); first != suspect {
		t.Fatalf("first popped %v, want the expedited %v ahead of the backlog", first.checker, suspect.checker)
	}
	for n := 3; n > 0; n-- {
		if s.queue.popDue(time.Now()) == nil {
			t.Fatalf("the backlog lost a check")
		}
	}
}
