package prober

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestDetectionStages: a removal carries when each of its steps happened
// (issue 7's tail: where the time between a kill and the IPVS write
// goes): the signal as stamped by whoever saw it (a kernel timestamp for
// SYN probe answers, earlier than its hand-over), the detector's
// suspicion, the deciding check's start and end, the scheduler's emission
// and the detector passing it on; and a change without a fast signal (the
// ladder) carries no suspicion.
func TestDetectionStages(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name       string
		sig        EvidenceKind // 0: none, the scheduled checks' ladder
		stampAge   time.Duration
		checkTook  time.Duration
		deliverLag time.Duration
		wantFirst  string
		want       string // Stages.String()
	}{
		{"rst stamped in the kernel 5 ms before its hand-over", EvidenceReset, ms(5), ms(2), ms(3), "rst",
			"suspect=5.0 confirm=15.0 check_start=15.0 check_end=17.0 emitted=17.0 passed=20.0"},
		{"passive unanswered SYN, a slow check", EvidencePassiveUnanswered, ms(1), ms(1000), ms(0), "passive_unanswered",
			"suspect=1.0 confirm=11.0 check_start=11.0 check_end=1011.0 emitted=1011.0 passed=1011.0"},
		{"the ladder: no fast signal, the second failure decides", 0, 0, ms(10), ms(4), "failed check",
			"confirm=0.0 check_start=10.0 check_end=20.0 emitted=20.0 passed=24.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, clk, d, addr, u := evidenceLab(t, 1)
			run := func(ok bool, took time.Duration) {
				clk.add(took)
				s.mu.Lock()
				s.queue.remove(u)
				s.complete(u, Result{OK: ok, Duration: took}, clk.Now())
				s.mu.Unlock()
			}
			deliver := func() Transition {
				t.Helper()
				s.tmu.Lock()
				defer s.tmu.Unlock()
				if len(s.tq) == 0 {
					t.Fatal("no transition emitted")
				}
				tr := s.tq[0]
				s.tq = s.tq[1:]
				return tr
			}
			run(true, ms(1))
			d.transition(deliver()) // the first verdict
			clk.add(time.Second)
			seen := clk.Now()
			if tc.sig != 0 {
				clk.add(tc.stampAge)
				d.Observe(Evidence{Target: addr, Kind: tc.sig, Count: 1, At: seen})
				clk.add(ms(10)) // the expedited check waits for its turn
			}
			run(false, tc.checkTook)
			if tc.sig == 0 {
				run(false, tc.checkTook)                // retry 1: the second failure decides
				seen = clk.Now().Add(-2 * tc.checkTook) // the episode began with the first failed check's start
			}
			tr := deliver()
			clk.add(tc.deliverLag)
			out := d.transition(tr)
			if len(out) != 1 || out[0].Up || out[0].Detection == nil {
				t.Fatalf("passed on %d transitions (%+v), want one removal with its evidence", len(out), out)
			}
			det := out[0].Detection
			if det.FirstSignal != tc.wantFirst {
				t.Fatalf("first_signal %q, want %q", det.FirstSignal, tc.wantFirst)
			}
			if !det.Stages.Signal.Equal(seen) {
				t.Fatalf("signal at %v, want the evidence's own time %v", det.Stages.Signal, seen)
			}
			if got := det.Stages.String(); got != tc.want {
				t.Fatalf("stages %q, want %q", got, tc.want)
			}
			attrs := det.LogAttrs()
			var line strings.Builder
			for i := 0; i+1 < len(attrs); i += 2 {
				line.WriteString(attrs[i].(string) + " ")
			}
			if !strings.Contains(line.String(), "first_signal_at ") || !strings.Contains(line.String(), "stages_ms ") {
				t.Fatalf("log attributes %q lack first_signal_at and stages_ms", line.String())
			}
		})
	}
}

// TestCorroborationDuringTheCheck: a negative signal seen while the
// failed check ran corroborates it however long the check's timeout (a
// black-holed server's clients retransmit their SYNs 1, 2, 4 s apart: the
// one seen 2.2 s before a 3 s check failed was too old for the 2 s
// window, and the server climbed the retry ladder); one as old from
// before the check does not, and a SYN-ACK after it still wins.
func TestCorroborationDuringTheCheck(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name    string
		signal  int  // ms of the passive unanswered SYN
		synack  int  // ms of a SYN-ACK after it; 0: none
		silence bool // unanswered probes (trusted) every 100 ms around it
		start   int  // the check's start
		fail    int  // and failure
		wantCut bool
	}{
		{"seen 2.2 s before the failure, during the check", 1000, 0, false, 200, 3200, true},
		{"seen 0.5 s before the failure", 2700, 0, false, 200, 3200, true},
		{"seen 2.2 s before the failure, before the check", 1000, 0, false, 1100, 3200, false},
		{"seen during the check, a SYN-ACK since", 1000, 1500, false, 200, 3200, false},
		{"seen during the check, unanswered probes after it", 1000, 0, true, 200, 3200, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testParams(DetectFast)
			addr := netip.MustParseAddrPort("198.18.1.2:80")
			e := &epState{addr: addr}
			e.observe(&p, Evidence{Target: addr, Kind: EvidencePassiveUnanswered, Count: 1, At: ms(tc.signal)}, ms(tc.signal))
			if tc.synack > 0 {
				e.observe(&p, Evidence{Target: addr, Kind: EvidenceSynAck, At: ms(tc.synack)}, ms(tc.synack))
			}
			if tc.silence { // a later silence must not hide the passive signal (it became the newest negative)
				for i, at := 0, tc.signal+100; at < tc.fail; i, at = i+1, at+100 {
					e.observe(&p, Evidence{Target: addr, Kind: EvidenceSilence, Count: i + 1, At: ms(at)}, ms(at))
				}
				p.probesLate = true // silence itself may not corroborate: only the passive signal can
			}
			fail := tc.fail
			why, cut := e.corroborates(&p, ms(tc.start), ms(fail))
			if cut != tc.wantCut {
				t.Fatalf("corroborates = %q, %t; want cut %t", why, cut, tc.wantCut)
			}
		})
	}
}
