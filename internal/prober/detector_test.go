package prober

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// testParams are the default thresholds in mode m.
func testParams(m DetectorMode) detectorParams {
	return detectorParams{
		mode: m, missThreshold: DefaultMissThreshold, suspectMisses: DefaultSuspectMisses, passiveResets: DefaultPassiveResets,
		rstWindow: DefaultRSTWindow, backoffMin: DefaultBackoffMin, backoffMax: DefaultBackoffMax,
		penaltyHalfLife: DefaultPenaltyHalfLife, holdBase: DefaultHoldBase, holdMax: DefaultHoldMax,
	}
}

// epStep is one event applied to an endpoint at a time (ms from t0).
type epStep struct {
	at int // ms
	// one of:
	sig   EvidenceKind // a fast signal
	count int          // its Count
	check *checkStep   // a completed full check

	wantPhase   phase
	wantRequest bool   // the signal asks for a check now
	wantCut     string // for a failed check of an up checker: "" no cut, else a substring of the corroboration
}

// checkStep is a full check attempt: started at start (ms), its result,
// and whether the endpoint's checks are up after it (wantCut is asked
// before, as the scheduler does).
type checkStep struct {
	start int
	ok    bool
	up    bool
	askUp bool // the checker was up: the scheduler asks about a cut
}

func TestEndpointStateMachine(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	sig := func(at int, k EvidenceKind, count int, want phase, req bool) epStep {
		return epStep{at: at, sig: k, count: count, wantPhase: want, wantRequest: req}
	}
	chk := func(at, start int, ok, up, askUp bool, want phase, cut string) epStep {
		return epStep{at: at, check: &checkStep{start: start, ok: ok, up: up, askUp: askUp}, wantPhase: want, wantCut: cut}
	}
	tests := []struct {
		name  string
		mode  DetectorMode
		steps []epStep
	}{
		{"killed: RST suspects, the refused connect is corroborated", DetectFast, []epStep{
			sig(0, EvidenceSynAck, 0, phaseUp, false),
			sig(100, EvidenceReset, 0, phaseSuspect, true),
			sig(200, EvidenceReset, 0, phaseSuspect, false), // already asked
			chk(202, 201, false, false, true, phaseDown, "rst"),
			sig(300, EvidenceReset, 0, phaseDown, false),
		}},
		{"black hole: the first miss suspects; a timeout after it is corroborated", DetectFast, []epStep{
			sig(0, EvidenceSynAck, 0, phaseUp, false),
			sig(100, EvidenceSilence, 1, phaseSuspect, true),
			sig(200, EvidenceSilence, 2, phaseSuspect, false),
			sig(300, EvidenceSilence, 3, phaseSuspect, false),
			sig(400, EvidenceSilence, 4, phaseSuspect, false),
			chk(3110, 110, false, false, true, phaseDown, "probes unanswered"),
		}},
		{"a timeout with fewer than MissThreshold misses is not corroborated", DetectFast, []epStep{
			sig(0, EvidenceSynAck, 0, phaseUp, false),
			sig(100, EvidenceSilence, 1, phaseSuspect, true),
			sig(200, EvidenceSilence, 2, phaseSuspect, false),
			chk(250, 110, false, true, true, phaseSuspect, ""),
		}},
		{"silence that began well into the check does not cut the ladder", DetectFast, []epStep{
			sig(0, EvidenceSynAck, 0, phaseUp, false),
			sig(400, EvidenceSilence, 1, phaseSuspect, true),
			sig(500, EvidenceSilence, 2, phaseSuspect, false),
			sig(600, EvidenceSilence, 3, phaseSuspect, false),
			chk(1050, 50, false, true, true, phaseSuspect, ""), // began 350 ms into a 1 s check: more than a quarter
		}},
		{"black hole just before a scheduled check: silence from 132 ms into its 3 s cuts", DetectFast, []epStep{
			sig(0, EvidenceSynAck, 0, phaseUp, false), // the black hole follows; the check's SYN at 84 is lost
			sig(216, EvidenceSilence, 1, phaseSuspect, true),
			sig(316, EvidenceSilence, 2, phaseSuspect, false),
			sig(416, EvidenceSilence, 3, phaseSuspect, false),
			sig(3016, EvidenceSilence, 29, phaseSuspect, false),
			chk(3084, 84, false, false, true, phaseDown, "132ms into the check"),
		}},
		{"silence that began more than 300 ms into a long check does not cut", DetectFast, []epStep{
			sig(0, EvidenceSynAck, 0, phaseUp, false),
			sig(401, EvidenceSilence, 1, phaseSuspect, true),
			sig(501, EvidenceSilence, 2, phaseSuspect, false),
			sig(601, EvidenceSilence, 3, phaseSuspect, false),
			chk(3100, 100, false, true, true, phaseSuspect, ""),
		}},
		{"a SYN-ACK inside a silence that began into the check keeps the ladder", DetectFast, []epStep{
			sig(0, EvidenceSynAck, 0, phaseUp, false),
			sig(200, EvidenceSilence, 1, phaseSuspect, true),
			sig(300, EvidenceSilence, 2, phaseSuspect, false),
			sig(400, EvidenceSynAck, 0, phaseSuspect, false),
			sig(500, EvidenceSilence, 1, phaseSuspect, false),
			sig(600, EvidenceSilence, 2, phaseSuspect, false),
			sig(700, EvidenceSilence, 3, phaseSuspect, false),
			chk(3100, 100, false, true, true, phaseSuspect, ""), // this silence began 400 ms in
		}},
		{"after a wrong silence suspicion one miss no longer suspects, three do, until it is forgotten", DetectFast, []epStep{
			sig(0, EvidenceSilence, 1, phaseSuspect, true),
			chk(100, 10, true, true, false, phaseUp, ""), // cleared: backoff 1 s, to 1100
			sig(1200, EvidenceSilence, 1, phaseUp, false),
			sig(1300, EvidenceSilence, 2, phaseUp, false),
			sig(1400, EvidenceSilence, 3, phaseSuspect, true),
			chk(1500, 1410, true, true, false, phaseUp, ""),    // cleared again: backoff 2 s, to 3500
			sig(33400, EvidenceSilence, 1, phaseUp, false),     // 29.9 s after the backoff: remembered
			sig(33600, EvidenceSilence, 1, phaseSuspect, true), // 30.1 s after: forgotten
		}},
		{"a long silence suspects within the backoff of a wrong suspicion", DetectFast, []epStep{
			sig(0, EvidenceSilence, 1, phaseSuspect, true),
			chk(100, 10, true, true, false, phaseUp, ""), // cleared: backoff 1 s, to 1100
			sig(200, EvidenceSilence, 1, phaseUp, false),
			sig(400, EvidenceSilence, 3, phaseUp, false), // within the backoff
			sig(600, EvidenceSilence, 5, phaseUp, false),
			sig(700, EvidenceSilence, 6, phaseSuspect, true), // 2·MissThreshold in a row: suspects anyway
		}},
		{"lossy path: a SYN-ACK inside the silence keeps the ladder", DetectFast, []epStep{
			sig(0, EvidenceSilence, 1, phaseSuspect, true),
			sig(100, EvidenceSilence, 2, phaseSuspect, false),
			sig(200, EvidenceSilence, 3, phaseSuspect, false),
			sig(300, EvidenceSynAck, 0, phaseSuspect, false),
			sig(400, EvidenceSilence, 1, phaseSuspect, false),
			chk(3300, 300, false, true, true, phaseSuspect, ""),
			chk(3400, 3300, true, true, false, phaseUp, ""), // cleared, backoff 1 s
			sig(3500, EvidenceSilence, 2, phaseUp, false),
			sig(3600, EvidenceSilence, 3, phaseUp, false), // within the backoff: no request
			sig(4500, EvidenceSilence, 3, phaseSuspect, true),
		}},
		{"untrusted silence: no suspicion, no cut", DetectFast, []epStep{
			{at: -1}, // marker: silence untrusted from here
			sig(0, EvidenceSynAck, 0, phaseUp, false),
			sig(100, EvidenceSilence, 1, phaseUp, false),
			sig(200, EvidenceSilence, 2, phaseUp, false),
			sig(300, EvidenceSilence, 3, phaseUp, false),
			sig(400, EvidenceSilence, 4, phaseUp, false),
			chk(3500, 400, false, true, true, phaseUp, ""),
			sig(3600, EvidenceReset, 0, phaseSuspect, true), // a RST still counts
		}},
		{"an endpoint silent since before silence became untrusted still corroborates", DetectFast, []epStep{
			sig(0, EvidenceSynAck, 0, phaseUp, false),
			sig(100, EvidenceSilence, 1, phaseSuspect, true),
			sig(200, EvidenceSilence, 2, phaseSuspect, false),
			sig(300, EvidenceSilence, 3, phaseSuspect, false),
			{at: -2}, // marker: silence untrusted from here, since 1000 ms
			chk(3110, 110, false, false, true, phaseDown, "probes unanswered"),
		}},
		{"a RST is not held back by the backoff of a wrong silence", DetectFast, []epStep{
			sig(0, EvidenceSilence, 3, phaseSuspect, true),
			chk(100, 10, true, true, false, phaseUp, ""),
			sig(150, EvidenceSilence, 3, phaseUp, false),
			sig(200, EvidenceReset, 0, phaseSuspect, true),
		}},
		{"contradiction: SYN-ACK with a failing HTTP check resolves by the ladder", DetectFast, []epStep{
			sig(0, EvidenceSynAck, 0, phaseUp, false),
			chk(100, 50, false, true, true, phaseUp, ""),
			sig(150, EvidenceSynAck, 0, phaseUp, false),
			chk(200, 160, false, false, true, phaseDown, ""),
		}},
		{"a RST older than the newest SYN-ACK does not corroborate", DetectFast, []epStep{
			sig(0, EvidenceReset, 0, phaseSuspect, true),
			sig(100, EvidenceSynAck, 0, phaseSuspect, false),
			chk(200, 150, false, true, true, phaseSuspect, ""),
		}},
		{"a stale RST does not corroborate", DetectFast, []epStep{
			sig(0, EvidenceReset, 0, phaseSuspect, true),
			chk(5000, 4000, false, true, true, phaseSuspect, ""),
		}},
		{"compatible mode never cuts", DetectCompatible, []epStep{
			sig(100, EvidenceReset, 0, phaseSuspect, true),
			chk(102, 101, false, true, true, phaseSuspect, ""),
		}},
		{"passive resets below the threshold are no suspicion", DetectFast, []epStep{
			sig(0, EvidencePassiveReset, 2, phaseUp, false),
			sig(10, EvidencePassiveReset, 3, phaseSuspect, true),
			chk(20, 11, true, true, false, phaseUp, ""), // resets from a healthy server under load
		}},
		{"recovery: SYN-ACK from a down endpoint asks once; the checks decide", DetectFast, []epStep{
			sig(0, EvidenceReset, 0, phaseSuspect, true),
			chk(5, 1, false, false, true, phaseDown, "rst"),
			sig(1000, EvidenceSynAck, 0, phaseRecovering, true),
			sig(1100, EvidenceSynAck, 0, phaseRecovering, false),
			chk(1105, 1101, true, false, false, phaseRecovering, ""), // HTTP: failed_url forgotten, not up yet
			chk(2105, 2101, true, true, false, phaseUp, ""),
		}},
		{"recovery whose checks still fail backs off", DetectFast, []epStep{
			sig(0, EvidenceReset, 0, phaseSuspect, true),
			chk(5, 1, false, false, true, phaseDown, "rst"),
			sig(1000, EvidenceSynAck, 0, phaseRecovering, true),
			chk(1005, 1001, false, false, false, phaseDown, ""),
			sig(1100, EvidenceSynAck, 0, phaseDown, false), // within 1 s
			sig(2100, EvidenceSynAck, 0, phaseRecovering, true),
		}},
		{"a failure without any signal starts an episode but no suspicion", DetectFast, []epStep{
			chk(1000, 900, false, true, true, phaseUp, ""),
			chk(2000, 1900, true, true, false, phaseUp, ""),
		}},
		{"a suspicion whose check never reports starts over", DetectFast, []epStep{
			sig(0, EvidenceReset, 0, phaseSuspect, true),
			sig(31000, EvidenceReset, 0, phaseSuspect, true),
		}},
		{"a recovery waiting for the checks' own schedule is not hurried", DetectFast, []epStep{
			sig(0, EvidenceReset, 0, phaseSuspect, true),
			chk(5, 1, false, false, true, phaseDown, "rst"),
			sig(1000, EvidenceSynAck, 0, phaseRecovering, true),
			chk(1005, 1001, true, false, false, phaseRecovering, ""), // failure forgotten; up a delay_loop later
			sig(40000, EvidenceSynAck, 0, phaseRecovering, false),
			chk(61005, 61001, true, true, false, phaseUp, ""),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testParams(tc.mode)
			addr := netip.MustParseAddrPort("198.18.1.2:80")
			e := &epState{addr: addr}
			for i, s := range tc.steps {
				if s.at < 0 {
					p.silenceUntrusted = true
					if s.at == -2 {
						p.untrustedSince = ms(1000)
					}
					continue
				}
				now := ms(s.at)
				if s.check != nil {
					if s.check.askUp {
						why, cut := e.corroborates(&p, ms(s.check.start), now)
						if (s.wantCut != "") != cut || !strings.Contains(why, s.wantCut) {
							t.Fatalf("step %d: corroborates = %q, %t; want cut %q", i, why, cut, s.wantCut)
						}
					}
					e.checked(&p, s.check.ok, s.check.up, ms(s.check.start), now)
				} else {
					r, req := e.observe(&p, Evidence{Target: addr, Kind: s.sig, Count: s.count, At: now}, now)
					if req != s.wantRequest {
						t.Fatalf("step %d (%s): request %t, want %t", i, s.sig, req, s.wantRequest)
					}
					if req && r.addr != addr {
						t.Fatalf("step %d: request for %v", i, r.addr)
					}
				}
				if e.phase != s.wantPhase {
					t.Fatalf("step %d: phase %s, want %s", i, e.phase, s.wantPhase)
				}
			}
		})
	}
}

// TestDamping drives the flap damping with a fake clock.
func TestDamping(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := config.RealServerKey{}
	type ev struct {
		at       time.Duration
		up       bool
		tick     bool // release check instead of a transition
		wantPass bool
		wantHold time.Duration // >0: held this long
	}
	tests := []struct {
		name   string
		mode   DetectorMode
		events []ev
	}{
		{"first failure and recovery pass at once", DetectFast, []ev{
			{at: 0, up: false, wantPass: true},
			{at: time.Second, up: true, wantPass: true},
		}},
		{"a second flap holds the recovery for 1 s", DetectFast, []ev{
			{at: 0, up: true, wantPass: true},
			{at: time.Second, up: false, wantPass: true}, // penalty 1
			{at: 2 * time.Second, up: true, wantPass: true},
			{at: 3 * time.Second, up: false, wantPass: true}, // penalty ~1.98 ... below 2
			{at: 3100 * time.Millisecond, up: true, wantPass: true},
			{at: 3200 * time.Millisecond, up: false, wantPass: true}, // ~2.97
			{at: 3300 * time.Millisecond, up: true, wantHold: 1950 * time.Millisecond},
			{at: 4 * time.Second, tick: true},
			{at: 5300 * time.Millisecond, tick: true, wantPass: true},
		}},
		{"a failure during the hold cancels it and IPVS sees nothing", DetectFast, []ev{
			{at: 0, up: true, wantPass: true},
			{at: 100 * time.Millisecond, up: false, wantPass: true},
			{at: 200 * time.Millisecond, up: true, wantPass: true},
			{at: 300 * time.Millisecond, up: false, wantPass: true},
			{at: 400 * time.Millisecond, up: true, wantPass: true},
			{at: 500 * time.Millisecond, up: false, wantPass: true},
			{at: 600 * time.Millisecond, up: true, wantHold: 1985 * time.Millisecond},
			{at: 700 * time.Millisecond, up: false},
			{at: 10 * time.Second, tick: true},
		}},
		{"the hold grows with each flap and never exceeds 10 s", DetectFast, []ev{
			{at: 0, up: true, wantPass: true},
			{at: 1, up: false, wantPass: true}, {at: 2, up: true, wantPass: true},
			{at: 3, up: false, wantPass: true}, {at: 4, up: true, wantPass: true},
			{at: 5, up: false, wantPass: true}, {at: 6, up: true, wantHold: 2 * time.Second},
			{at: 7, up: false}, {at: 8, up: true, wantHold: 4 * time.Second},
			{at: 9, up: false}, {at: 10, up: true, wantHold: 8 * time.Second},
			{at: 11, up: false}, {at: 12, up: true, wantHold: 10 * time.Second},
			{at: 10*time.Second + 11, tick: true},
			{at: 10*time.Second + 12, tick: true, wantPass: true},
		}},
		{"the penalty decays: a flap a few minutes later is free", DetectFast, []ev{
			{at: 0, up: true, wantPass: true},
			{at: 1, up: false, wantPass: true}, {at: 2, up: true, wantPass: true},
			{at: 3, up: false, wantPass: true}, {at: 4, up: true, wantPass: true},
			{at: 5 * time.Minute, up: false, wantPass: true},
			{at: 5*time.Minute + 1, up: true, wantPass: true},
		}},
		{"compatible mode never damps", DetectCompatible, []ev{
			{at: 0, up: true, wantPass: true},
			{at: 1, up: false, wantPass: true}, {at: 2, up: true, wantPass: true},
			{at: 3, up: false, wantPass: true}, {at: 4, up: true, wantPass: true},
			{at: 5, up: false, wantPass: true}, {at: 6, up: true, wantPass: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testParams(tc.mode)
			d := &damping{}
			for i, e := range tc.events {
				now := t0.Add(e.at)
				var passed []Transition
				var held time.Duration
				if e.tick {
					if tr, ok := d.due(now); ok {
						passed = append(passed, tr)
					}
				} else {
					passed, held = d.onTransition(&p, Transition{Key: key, Up: e.up, At: now}, now)
				}
				if (len(passed) > 0) != e.wantPass {
					t.Fatalf("event %d: passed %v, want pass %t", i, passed, e.wantPass)
				}
				if diff := held - e.wantHold; diff < -60*time.Millisecond || diff > 60*time.Millisecond {
					t.Fatalf("event %d: held %v, want about %v (penalty %.2f)", i, held, e.wantHold, d.penalty)
				}
			}
		})
	}
}

// TestDetectorFlapBound: a real server whose checks flip every 200 ms for
// a minute (fake clock) makes a bounded number of IPVS changes, and the
// one that then stays up is passed on within 15 s.
func TestDetectorFlapBound(t *testing.T) {
	p := testParams(DetectFast)
	d := &damping{}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	changes := 0
	up := true
	d.onTransition(&p, Transition{Up: true}, t0)
	var now time.Time
	for i := 1; i <= 300; i++ { // 60 s
		now = t0.Add(time.Duration(i) * 200 * time.Millisecond)
		up = !up
		out, _ := d.onTransition(&p, Transition{Up: up}, now)
		changes += len(out)
		if _, ok := d.due(now); ok {
			changes++
		}
	}
	if changes > 12 {
		t.Fatalf("%d IPVS changes in a minute of flapping every 200 ms, want at most 12", changes)
	}
	if !up {
		out, _ := d.onTransition(&p, Transition{Up: true}, now)
		changes += len(out)
	}
	recovered := now
	for now.Sub(recovered) <= 15*time.Second {
		now = now.Add(100 * time.Millisecond)
		if _, ok := d.due(now); ok {
			t.Logf("%d changes in the minute; re-added %v after recovering", changes, now.Sub(recovered))
			return
		}
	}
	t.Fatalf("not re-added within 15 s of recovering (penalty %.2f)", d.penalty)
}

// FuzzDetectorSignals drives one endpoint and its real server's damping
// with arbitrary sequences of signals and check results, and checks the
// invariants: a signal never takes an endpoint down or brings it up (only
// checks do), compatible mode never cuts a ladder or holds a recovery,
// and a hold never exceeds holdMax.
func FuzzDetectorSignals(f *testing.F) {
	f.Add([]byte{2, 0, 10, 1, 3, 3, 30, 0, 1, 50}, false)
	f.Add([]byte{3, 1, 3, 2, 3, 3, 0, 9, 5, 4, 200, 7}, true)
	f.Fuzz(func(t *testing.T, ops []byte, compatible bool) {
		mode := DetectFast
		if compatible {
			mode = DetectCompatible
		}
		p := testParams(mode)
		addr := netip.MustParseAddrPort("198.18.1.2:80")
		e := &epState{addr: addr}
		d := &damping{}
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		up := true
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i], ops[i+1]
			now = now.Add(time.Duration(arg) * 10 * time.Millisecond)
			if op%4 != 0 { // a signal
				was := e.phase
				ev := Evidence{Target: addr, Kind: EvidenceKind(1 + int(op/4)%int(evidenceKinds-1)), Count: int(arg % 8), At: now}
				e.observe(&p, ev, now)
				wasUp, isUp := was == phaseUp || was == phaseSuspect, e.phase == phaseUp || e.phase == phaseSuspect
				if wasUp != isUp {
					t.Fatalf("signal %+v moved %s to %s", ev, was, e.phase)
				}
				continue
			}
			ok := arg%2 == 0
			if _, cut := e.corroborates(&p, now.Add(-time.Second), now); cut && mode == DetectCompatible {
				t.Fatal("compatible mode cut a ladder")
			}
			newUp := ok || (arg%3 != 0 && up)
			e.checked(&p, ok, newUp, now.Add(-time.Second), now)
			if newUp != up {
				up = newUp
				_, held := d.onTransition(&p, Transition{Up: up, At: now}, now)
				if held > p.holdMax || held > 0 && mode == DetectCompatible {
					t.Fatalf("held %v (mode %s, max %v)", held, mode, p.holdMax)
				}
			}
			d.due(now)
		}
	})
}

// TestDetectorMetricsLint registers the detector's metrics on a pedantic
// registry and lints them.
func TestDetectorMetricsLint(t *testing.T) {
	s, err := NewScheduler(&config.Config{}, SchedulerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	d, err := NewDetector(s, DetectorOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewDetector(s, DetectorOptions{}); !errors.Is(err, ErrDetectorAttached) {
		t.Fatalf("second detector: %v, want ErrDetectorAttached", err)
	}
	d.m.latency.WithLabelValues("down", "fast").Observe(0.01)
	d.m.suspicions.WithLabelValues("rst").Inc()
	d.damp.get(config.RealServerKey{}).penalty = 2.5
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}
	if n := testutil.CollectAndCount(d.m.state, "lvsprobe_detector_flap_penalty"); n != 1 {
		t.Errorf("%d flap penalty series, want 1", n)
	}
}
