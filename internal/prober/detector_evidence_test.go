package prober

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// evStep is one event of TestDetectionIsTheChangesOwn: a completed check
// of the endpoint (check: "ok" or "fail"), a fast signal (sig), or the
// delivery of the oldest transition the scheduler emitted, through the
// detector, with what it must carry.
type evStep struct {
	check string
	sig   EvidenceKind

	deliver   bool
	wantUp    bool
	wantFirst string // Detection.FirstSignal
	wantCut   string // substring of Detection.Cut; "" wants none
}

// TestDetectionIsTheChangesOwn: the evidence a health change carries (its
// log line's first_signal, signals, ladder_cut_by) is the evidence that
// made it, however late the change is delivered. The scheduler emits a
// change; the detector passes it on later (Run), and under load, at
// start-up, much later: by then the SYN probes of an endpoint that just
// went down have found it listening and started its next (recovery)
// episode. The removals of healthy real servers in the guest (§11 fifth
// round, "20 with first_signal=synack") were logged that way: a failed
// full check's removal labelled with the SYN-ACK that came after it. And
// an episode that ended in a recovery is over: the next failure is its own.
func TestDetectionIsTheChangesOwn(t *testing.T) {
	ok := func() evStep { return evStep{check: "ok"} }
	fail := func() evStep { return evStep{check: "fail"} }
	sig := func(k EvidenceKind) evStep { return evStep{sig: k} }
	deliver := func(up bool, first, cut string) evStep {
		return evStep{deliver: true, wantUp: up, wantFirst: first, wantCut: cut}
	}
	tests := []struct {
		name  string
		steps []evStep
	}{
		{"first check fails at start-up; the SYN-ACKs that follow do not relabel the removal", []evStep{
			fail(), // retry_it = retry before the first run: one failure decides
			sig(EvidenceSynAck),
			sig(EvidenceSynAck),
			deliver(false, "failed check", ""),
		}},
		{"killed: the RST's removal keeps its RST when the restarted server's SYN-ACK comes first", []evStep{
			ok(), deliver(true, "none", ""), // first verdict
			sig(EvidenceReset),
			fail(), // cut by the RST
			sig(EvidenceSynAck),
			deliver(false, "rst", "rst"),
		}},
		{"a failure after a recovery is an episode of its own", []evStep{
			ok(), deliver(true, "none", ""),
			sig(EvidenceReset), fail(), deliver(false, "rst", "rst"),
			sig(EvidenceSynAck), ok(), deliver(true, "synack", ""),
			fail(), fail(), fail(), // the ladder: no fast signal
			deliver(false, "failed check", ""),
		}},
		{"a recovery delivered after the next failure's signal keeps its SYN-ACK", []evStep{
			ok(), deliver(true, "none", ""),
			sig(EvidenceReset), fail(), deliver(false, "rst", "rst"),
			sig(EvidenceSynAck), ok(),
			sig(EvidenceReset), // a new episode, before the recovery is delivered
			deliver(true, "synack", ""),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, clk, d, addr, u := evidenceLab(t, 2)
			for i, st := range tc.steps {
				clk.add(50 * time.Millisecond)
				now := clk.Now()
				switch {
				case st.check != "":
					res := Result{OK: st.check == "ok", Duration: 10 * time.Millisecond, Message: "connect: " + st.check}
					s.mu.Lock()
					s.queue.remove(u)
					s.complete(u, res, now)
					s.mu.Unlock()
				case st.sig != 0:
					d.Observe(Evidence{Target: addr, Kind: st.sig, At: now})
				case st.deliver:
					s.tmu.Lock()
					if len(s.tq) == 0 {
						s.tmu.Unlock()
						t.Fatalf("step %d: no transition to deliver", i)
					}
					tr := s.tq[0]
					s.tq = s.tq[1:]
					s.tmu.Unlock()
					out := d.transition(tr)
					if len(out) != 1 {
						t.Fatalf("step %d: %d transitions passed on, want 1", i, len(out))
					}
					got := out[0]
					if got.Up != st.wantUp || got.Detection == nil || got.Detection.FirstSignal != st.wantFirst ||
						(st.wantCut == "") != (got.Detection.Cut == "") || !strings.Contains(got.Detection.Cut, st.wantCut) {
						t.Fatalf("step %d: up=%t detection %s; want up=%t first_signal=%q cut %q", i, got.Up,
							describeDetection(got.Detection), st.wantUp, st.wantFirst, st.wantCut)
					}
				}
			}
		})
	}
}

// describeDetection renders a detection for a test failure.
func describeDetection(d *Detection) string {
	if d == nil {
		return "nil"
	}
	return fmt.Sprintf("first_signal=%q signals=%q cut=%q checks=%d", d.FirstSignal, d.Signals, d.Cut, d.Checks)
}

// TestRecoveredEndpointIsForgotten: once an endpoint is up again and its
// recovery emitted, the detector keeps nothing of it (at 10,000 real
// servers every endpoint that ever recovered used to keep its state).
func TestRecoveredEndpointIsForgotten(t *testing.T) {
	s, clk, d, addr, u := evidenceLab(t, 0)
	complete := func(ok bool) {
		clk.add(50 * time.Millisecond)
		s.mu.Lock()
		s.queue.remove(u)
		s.complete(u, Result{OK: ok}, clk.Now())
		s.mu.Unlock()
	}
	complete(true)
	d.Observe(Evidence{Target: addr, Kind: EvidenceReset, At: clk.Now()})
	complete(false)
	d.Observe(Evidence{Target: addr, Kind: EvidenceSynAck, At: clk.Now()})
	complete(true)
	clk.add(DefaultRSTWindow + DefaultBackoffMax + time.Second)
	d.Observe(Evidence{Target: addr, Kind: EvidenceSynAck, At: clk.Now()}) // settles what is quiet
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.eps[addr]; e != nil {
		t.Fatalf("recovered endpoint still kept: phase %s, episode first %q", e.phase, e.ep.firstWhat)
	}
}

// evidenceLab is a scheduler with one TCP_CHECK on 198.18.1.2:80 (retry
// as given, 0 for the default), a detector on a fake clock, and the
// check's unit, for tests that drive results and signals by hand.
func evidenceLab(t *testing.T, retry int) (*Scheduler, *fakeClock, *Detector, netip.AddrPort, *unit) {
	t.Helper()
	cfg := forgetConf(t, 1) // one TCP_CHECK, retry 1 by default
	if retry > 0 {
		cfg.VirtualServers[0].RealServers[0].Checkers[0].Retry = retry
	}
	clk := &fakeClock{now: time.Unix(1000, 0)}
	s, d := newTestDetector(t, cfg, SchedulerOptions{FirstVerdict: true}, DetectorOptions{Now: clk.Now})
	var u *unit
	for _, x := range s.plan.units {
		u = x
	}
	return s, clk, d, netip.MustParseAddrPort("198.18.1.2:80"), u
}
