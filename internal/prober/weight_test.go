package prober

import (
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestLadderOnlyUp: MISC, DNS, UDP and PING checks climb the retry
// ladder only while up (keepalived's udp_epilog and friends): while down
// every failure waits a delay_loop; SMTP and TCP climb it again.
func TestLadderOnlyUp(t *testing.T) {
	const dl, dbr = 10 * time.Second, 3 * time.Second
	for _, ct := range []config.CheckerType{config.MiscCheck, config.DNSCheck, config.UDPCheck, config.PingCheck, config.SMTPCheck} {
		p := policyOf(&config.Checker{Type: ct, DelayLoop: dl, Retry: 2, DelayBeforeRetry: dbr})
		s := newCheckState(p)
		steps := []want{
			{true, dl, true, false},
			{false, dbr, true, false},
			{false, dbr, true, false},
			{false, dl, false, true},
			{false, dl, false, false}, // down: no ladder
			{false, dl, false, false},
			{true, dl, true, true},
		}
		if ct == config.SMTPCheck {
			steps[4].delay, steps[5].delay = dbr, dbr // smtp_final climbs it while down too
		}
		for i, w := range steps {
			st := s.record(p, w.ok)
			if st.delay != w.delay || s.up != w.up || st.changed != w.changed {
				t.Fatalf("%s step %d (ok=%v): delay %v up %v changed %v; want %v %v %v", ct, i, w.ok, st.delay, s.up, st.changed, w.delay, w.up, w.changed)
			}
		}
	}
}

func TestFileCheckPolicy(t *testing.T) {
	p := policyOf(&config.Checker{Type: config.FileCheck, Alpha: true, Retry: 3})
	if p.delayLoop != FileCheckInterval || p.retry != 0 || p.alpha {
		t.Fatalf("FILE_CHECK policy %+v", p)
	}
}

func TestWeightChangeString(t *testing.T) {
	for w, s := range map[WeightChange]string{{}: "", {Kind: WeightAbsolute, Value: 7}: "=7",
		{Kind: WeightOffset, Value: 3}: "+3", {Kind: WeightOffset, Value: -3}: "-3"} {
		if w.String() != s {
			t.Errorf("%+v: %q, want %q", w, w.String(), s)
		}
	}
}
