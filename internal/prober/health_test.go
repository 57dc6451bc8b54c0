package prober

import (
	"testing"
	"time"
)

// want is the expected outcome of one attempt.
type want struct {
	ok      bool          // the attempt's result
	delay   time.Duration // until the next attempt
	up      bool          // the checker's state after it
	changed bool
}

func TestCheckStateRecord(t *testing.T) {
	const dl, dbr = 10 * time.Second, 3 * time.Second
	tcp := policy{delayLoop: dl, retry: 2, delayBeforeRetry: dbr}
	httpP := policy{delayLoop: dl, retry: 1, delayBeforeRetry: dbr, http: true}
	httpFR := httpP
	httpFR.fastRecovery = true
	httpLongRetry := policy{delayLoop: time.Second, retry: 1, delayBeforeRetry: dbr, http: true}
	tcpAlpha := policy{delayLoop: dl, retry: 1, delayBeforeRetry: dbr, alpha: true}
	httpAlpha := httpP
	httpAlpha.alpha = true
	tcpNoRetry := policy{delayLoop: 500 * time.Millisecond, delayBeforeRetry: dbr}

	tests := []struct {
		name  string
		pol   policy
		steps []want
	}{
		{"tcp: one failure is enough before the first verdict", tcp, []want{
			{false, dl, false, true},
			{true, dl, true, true},
		}},
		{"tcp: down after retry+1 failures, ladder again while down", tcp, []want{
			{true, dl, true, false},
			{false, dbr, true, false},
			{false, dbr, true, false},
			{false, dl, false, true},
			{false, dbr, false, false},
			{false, dbr, false, false},
			{false, dl, false, false},
			{true, dl, true, true},
		}},
		{"tcp: a success mid-ladder resets it", tcp, []want{
			{true, dl, true, false},
			{false, dbr, true, false},
			{true, dl, true, false},
			{false, dbr, true, false},
			{false, dbr, true, false},
			{false, dl, false, true},
		}},
		{"tcp: up at once on a success mid-ladder while down", tcp, []want{
			{false, dl, false, true},
			{false, dbr, false, false},
			{true, dl, true, true},
		}},
		{"tcp: retry 0 decides on every attempt", tcpNoRetry, []want{
			{true, 500 * time.Millisecond, true, false},
			{false, 500 * time.Millisecond, false, true},
			{true, 500 * time.Millisecond, true, true},
		}},
		{"tcp alpha: starts down, a success brings it up", tcpAlpha, []want{
			{false, dl, false, false},
			{false, dbr, false, false},
			{false, dl, false, false},
			{true, dl, true, true},
			{false, dbr, true, false},
			{false, dl, false, true},
		}},
		{"http: down after retry+1 failures, two successes to come back", httpP, []want{
			{true, dl, true, false},
			{false, dbr, true, false},
			{false, dl, false, true},
			{false, dl, false, false},
			{true, dl, false, false},
			{true, dl, true, true},
		}},
		{"http: one failure is enough before the first verdict", httpP, []want{
			{false, dl, false, true},
			{true, dl, false, false},
			{true, dl, true, true},
		}},
		{"http: a failure after the failed url was forgotten waits delay_before_retry", httpP, []want{
			{false, dl, false, true},
			{true, dl, false, false},
			{false, dbr, false, false},
			{true, dl, true, true},
		}},
		{"http: delay_before_retry longer than delay_loop while failed", httpLongRetry, []want{
			{true, time.Second, true, false},
			{false, dbr, true, false},
			{false, dbr, false, true},
			{false, dbr, false, false},
		}},
		{"http fast_recovery: the confirming check runs at once", httpFR, []want{
			{true, dl, true, false},
			{false, dbr, true, false},
			{false, dl, false, true},
			{true, 0, false, false},
			{true, dl, true, true},
		}},
		{"http fast_recovery: no spin after a failure", httpFR, []want{
			{false, dl, false, true},
			{true, 0, false, false},
			{false, dbr, false, false},
			{true, dl, true, true},
		}},
		{"http alpha: starts down, up on the first success", httpAlpha, []want{
			{true, dl, true, true},
		}},
		{"http alpha: failures keep it down without a transition", httpAlpha, []want{
			{false, dl, false, false},
			{false, dl, false, false},
			{true, dl, false, false},
			{true, dl, true, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newCheckState(tt.pol)
			if s.up == tt.pol.alpha {
				t.Fatalf("initial up = %t with alpha = %t", s.up, tt.pol.alpha)
			}
			for i, w := range tt.steps {
				st := s.record(tt.pol, w.ok)
				if st.delay != w.delay || s.up != w.up || st.changed != w.changed {
					t.Fatalf("step %d (ok=%t): delay %v up %t changed %t; want delay %v up %t changed %t",
						i, w.ok, st.delay, s.up, st.changed, w.delay, w.up, w.changed)
				}
			}
		})
	}
}

// FuzzCheckState drives the state machine with arbitrary policies and
// results and checks keepalived's invariants: once a checker has been up
// and has run, it goes down only after retry+1 consecutive failures, comes
// up only on a success, and waits one of its configured delays.
func FuzzCheckState(f *testing.F) {
	f.Add(uint8(2), false, false, false, []byte{1, 0, 0, 0, 1, 0})
	f.Add(uint8(1), true, true, false, []byte{1, 0, 0, 1, 1, 0, 1})
	f.Add(uint8(0), true, false, true, []byte{0, 0, 1, 1})
	f.Fuzz(func(t *testing.T, retry uint8, http, fast, alpha bool, results []byte) {
		p := policy{delayLoop: 7 * time.Second, retry: int(retry % 8), delayBeforeRetry: 2 * time.Second,
			http: http, fastRecovery: fast && http, alpha: alpha}
		s := newCheckState(p)
		run := 0 // consecutive failures since the checker was last seen up after a verdict
		tracking := false
		for i, b := range results {
			ok := b&1 == 1
			wasUp := s.up
			st := s.record(p, ok)
			switch st.delay {
			case p.delayLoop, p.delayBeforeRetry:
			case 0:
				if !ok || !p.fastRecovery {
					t.Fatalf("step %d: immediate reschedule after ok=%t fast=%t", i, ok, p.fastRecovery)
				}
			default:
				t.Fatalf("step %d: delay %v is not a configured one", i, st.delay)
			}
			if st.changed != (wasUp != s.up) {
				t.Fatalf("step %d: changed %t but up %t -> %t", i, st.changed, wasUp, s.up)
			}
			if st.changed && s.up && !ok {
				t.Fatalf("step %d: came up on a failure", i)
			}
			if st.changed && !s.up && ok {
				t.Fatalf("step %d: went down on a success", i)
			}
			if ok {
				run = 0
			} else {
				run++
			}
			if st.changed && !s.up && tracking && run != p.retry+1 {
				t.Fatalf("step %d: down after %d consecutive failures, want %d", i, run, p.retry+1)
			}
			if s.up && s.hasRun && ok {
				tracking = true
			}
		}
	})
}
