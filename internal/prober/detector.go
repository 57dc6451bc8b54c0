package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// EvidenceKind is what a fast signal reports about an endpoint.
type EvidenceKind uint8

// Kinds of evidence. SYN probes give SynAck, Reset and Silence; the
// passive observer gives the Passive kinds and Latency.
const (
	EvidenceSynAck            EvidenceKind = iota + 1 // a SYN was answered with a SYN-ACK: something listens
	EvidenceReset                                     // a SYN was answered with a RST: nothing listens
	EvidenceSilence                                   // Count probes in a row went unanswered
	EvidencePassiveReset                              // Count resets seen on live traffic to the endpoint
	EvidencePassiveUnanswered                         // Count client SYNs to the endpoint went unanswered
	EvidenceLatency                                   // a handshake took RTT (informational)
	evidenceKinds
)

// String names the kind for logs and metrics.
func (k EvidenceKind) String() string {
	switch k {
	case EvidenceSynAck:
		return "synack"
	case EvidenceReset:
		return "rst"
	case EvidenceSilence:
		return "silence"
	case EvidencePassiveReset:
		return "passive_reset"
	case EvidencePassiveUnanswered:
		return "passive_unanswered"
	case EvidenceLatency:
		return "latency"
	}
	return "unknown"
}

// Evidence is one fast observation of one endpoint (a checker's
// connect_ip:connect_port), from the SYN prober or the passive observer.
// Evidence is only ever a reason to run a full check sooner: it never
// changes a real server's health by itself.
type Evidence struct {
	Target netip.AddrPort // the endpoint observed
	Kind   EvidenceKind   // what was seen
	Count  int            // Silence: misses in a row; Passive kinds: events in the report
	RTT    time.Duration  // SynAck, Latency: the handshake time
	At     time.Time      // when it was seen; zero means when it is handed over
}

// describe renders the evidence for a log line.
func (ev Evidence) describe() string {
	switch ev.Kind {
	case EvidenceSilence:
		return fmt.Sprintf("%d probes unanswered", ev.Count)
	case EvidencePassiveReset, EvidencePassiveUnanswered:
		return fmt.Sprintf("%s×%d", ev.Kind, ev.Count)
	case EvidenceSynAck:
		return fmt.Sprintf("synack rtt %v", ev.RTT)
	}
	return ev.Kind.String()
}

// DetectorMode is the detector's policy.
type DetectorMode int

// Detector modes.
const (
	// DetectFast (the default): suspicion runs the confirming check now;
	// a failed check corroborated by an independent fast signal takes the
	// real server down without climbing the retry ladder; a flapping
	// real server's recoveries are held back.
	DetectFast DetectorMode = iota
	// DetectCompatible keeps keepalived's retry ladder and timing of
	// recoveries exactly; fast signals only make the checks run sooner.
	DetectCompatible
)

// String names the mode as the --detector flag spells it.
func (m DetectorMode) String() string {
	if m == DetectCompatible {
		return "compatible"
	}
	return "fast"
}

// ParseDetectorMode parses "fast" or "compatible".
func ParseDetectorMode(s string) (DetectorMode, error) {
	switch s {
	case "fast":
		return DetectFast, nil
	case "compatible":
		return DetectCompatible, nil
	}
	return 0, fmt.Errorf("detector mode %q: want fast or compatible", s)
}

// Detector defaults.
const (
	DefaultMissThreshold   = 3                      // unanswered probes in a row that corroborate a failed check, and that suspect a lossy endpoint
	DefaultSuspectMisses   = 1                      // unanswered probes in a row that suspect an endpoint with no wrong silence suspicion remembered
	DefaultPassiveResets   = 3                      // resets in one passive report that make a suspicion
	DefaultRSTWindow       = 2 * time.Second        // how old a RST may be and still corroborate a failed check
	DefaultBackoffMin      = time.Second            // first wait after a check that found a suspicion wrong
	DefaultBackoffMax      = 30 * time.Second       // longest such wait
	DefaultPenaltyHalfLife = time.Minute            // flap penalty halves this often
	DefaultHoldBase        = time.Second            // hold of a recovery at penalty 2
	DefaultHoldMax         = 10 * time.Second       // longest hold: re-added within 15 s of recovering
	detectorTick           = 100 * time.Millisecond // how often held recoveries are looked at (only while some are held)
)

// DetectorOptions tune a [Detector]. The zero value is the default policy.
type DetectorOptions struct {
	Mode            DetectorMode          // fast (default) or compatible
	Log             *slog.Logger          // nil discards
	Registerer      prometheus.Registerer // nil registers nothing
	MissThreshold   int                   // unanswered probes in a row that corroborate, and that suspect a lossy endpoint; 0: DefaultMissThreshold
	SuspectMisses   int                   // unanswered probes in a row that suspect any other endpoint; 0: DefaultSuspectMisses (at most MissThreshold)
	PassiveResets   int                   // resets in one passive report that make a suspicion; 0: DefaultPassiveResets
	RSTWindow       time.Duration         // how old a RST may be to corroborate; 0: DefaultRSTWindow
	BackoffMin      time.Duration         // 0: DefaultBackoffMin
	BackoffMax      time.Duration         // 0: DefaultBackoffMax
	PenaltyHalfLife time.Duration         // 0: DefaultPenaltyHalfLife
	HoldBase        time.Duration         // 0: DefaultHoldBase
	HoldMax         time.Duration         // 0: DefaultHoldMax
	Now             func() time.Time      // nil: time.Now (tests use a fake clock)
}

// Detection is the evidence behind one change of a real server's health
// that the detector passes on.
type Detection struct {
	Signals     string        // fast signals of the episode, "rst×2 silence×1", or "none"
	FirstSignal string        // what started the episode: a signal kind, or "failed check"
	Since       time.Duration // from the first signal (or failed check) to the change
	Cut         string        // the corroboration that cut the retry ladder short, "" if none
	Checks      int           // full check attempts in the episode
	Held        time.Duration // how long flap damping held a recovery back
	Penalty     float64       // the real server's flap penalty
	Stages      Stages        // when each step of the episode happened
}

// Stages are the wall-clock times of one detection's steps, to find where
// its time goes; a zero time is a step the episode did not have (a change
// decided by a scheduled check has no suspicion). The steps come in this
// order: the first signal (a SYN probe's answer as the kernel received
// it, a miss at its deadline (its successor probe's departure, or one
// interval after it left if earlier), a client SYN or
// reset as it crossed the passive hook; for other signals when they were
// handed over), the suspicion (the detector asks for the confirming
// checks), the first check attempt's start, the deciding attempt's start
// and end (the same attempt unless a retry ladder ran), the scheduler's
// emission of the change, and the detector passing it on (after flap
// damping) toward the reconciler.
type Stages struct {
	Signal     time.Time // the first signal of the episode (or the first failed check's start)
	Suspect    time.Time // the detector acted on a signal: confirming checks asked for
	Confirm    time.Time // the episode's first check attempt started (the confirming check)
	CheckStart time.Time // the deciding check attempt started (the last of a retry ladder)
	CheckEnd   time.Time // and completed
	Emitted    time.Time // the scheduler emitted the change
	Passed     time.Time // the detector passed it on
}

// String renders the stages as ms after the first signal,
// "suspect=1.2 confirm=1.5 check_start=1.5 check_end=2.0 emitted=2.1 passed=2.3";
// steps the episode did not have are left out, and "" without a signal.
func (st Stages) String() string {
	if st.Signal.IsZero() {
		return ""
	}
	var b []byte
	for _, s := range [...]struct {
		name string
		at   time.Time
	}{{"suspect", st.Suspect}, {"confirm", st.Confirm}, {"check_start", st.CheckStart}, {"check_end", st.CheckEnd}, {"emitted", st.Emitted}, {"passed", st.Passed}} {
		if s.at.IsZero() {
			continue
		}
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = fmt.Appendf(b, "%s=%.1f", s.name, float64(s.at.Sub(st.Signal))/float64(time.Millisecond))
	}
	return string(b)
}

// LogAttrs returns the detection as slog key/value pairs.
func (d *Detection) LogAttrs() []any {
	if d == nil {
		return nil
	}
	a := []any{"signals", d.Signals, "first_signal", d.FirstSignal, "since_first_signal", d.Since, "checks", d.Checks}
	if d.Cut != "" {
		a = append(a, "ladder_cut_by", d.Cut)
	}
	if d.Held > 0 {
		a = append(a, "held", d.Held)
	}
	if d.Penalty > 0 {
		a = append(a, "flap_penalty", fmt.Sprintf("%.2f", d.Penalty))
	}
	if st := d.Stages.String(); st != "" {
		a = append(a, "first_signal_at", d.Stages.Signal, "stages_ms", st)
	}
	return a
}

// ErrDetectorAttached is returned by [NewDetector] when the scheduler
// already has a detector.
var ErrDetectorAttached = errors.New("scheduler already has a detector")

// Detector is the fast-path failure detector. It joins fast signals (SYN
// probes, passive observation) with the scheduler's full checks, one state
// machine per endpoint (a checker's connect_ip:connect_port, which is how
// the network sees a real server):
//
//	UP ──negative signal──► SUSPECT ──check passes──► UP (the next request waits a growing backoff)
//	                           │
//	                    check fails and the real server's checks go down
//	                           ▼
//	RECOVERING ◄──SYN-ACK──── DOWN ◄──checks still fail── RECOVERING
//	     │
//	     └──checks pass──► UP
//
// A negative signal is a RST to a probe, unanswered probes (see below),
// or resets or unanswered client SYNs seen by the passive observer.
//
// A probe is unanswered when no valid answer reached the kernel before the
// target's next probe left or, if earlier (a backed-off prober), one probe
// interval after it left (80 ms by default; the SYN prober declares the
// miss on its next drain, within 10 ms). One such miss
// (SuspectMisses) suspects an endpoint: a black-holed real server is
// suspected one interval after its first unanswered probe left, and its
// confirming check starts then, so it is out about connect_timeout plus
// 100–200 ms after the black hole. A single lost packet then costs one
// extra full check, and the backoff that follows (1 s doubling to 30 s
// while the check keeps finding it wrong) keeps the cost bounded; while a
// wrong silence suspicion of the endpoint is remembered (its backoff ran
// less than BackoffMax ago) it takes MissThreshold misses in a row (3),
// so a lossy path (30 % loss: 2.7 % of probes end such a run) is suspected
// far less often; within the backoff itself only 2·MissThreshold misses in
// a row (6) suspect, so that a black hole is not left unsuspected until
// the backoff runs out. What corroborates a failed check is stricter:
// MissThreshold or more probes unanswered, and no SYN-ACK since the first,
// which came before the check started or at most a quarter of the check's
// span into it (300 ms at most) — a lossy path answers some of the
// dozens of probes a timing-out check spans. The quarter is for the real
// server black-holed just before a scheduled check started: its first
// miss is declared up to two intervals after the black hole, after the
// check's start, and that check's timeout used to climb the retry ladder
// (connect_timeout more before it was out).
//
// Silence is not evidence while more than 2 endpoints and more than 1 in
// 20 have MissThreshold probes unanswered in a row: that is the director
// (its own link, a stall), not the real servers. While the SYN prober has
// backed its rate off because it runs late ([Detector.SetProbesLate]),
// silence suspects but cuts a retry ladder only when it is long (three
// times MissThreshold probes in a row) and the others answer. While as many have missed one probe
// or more (a crowd: a burst of answers or probes the director's queue
// dropped, answered again at the next probe), silence suspects only at
// MissThreshold misses in a row: the crowd answers its next probe, a
// black-holed real server does not, and is suspected two intervals later
// instead of never (a guard on the first miss tripped on every burst the
// bench rig's veth dropped, §14.5). In both cases an endpoint that had
// MissThreshold probes unanswered before the others fell silent still
// corroborates its failed check (a burst of loss on the
// director's link during a black-holed server's confirming check must not
// send it up the retry ladder); one whose silence began only just before
// theirs is one of them. Entering SUSPECT or RECOVERING asks the scheduler to run the
// endpoint's full checks now ([Scheduler.Expedite]), pre-empting
// delay_loop; nothing else happens on a signal's word. Only full checks
// change health, through the scheduler's keepalived state machine:
//
//   - A failed full check of an up checker normally climbs the retry
//     ladder. In fast mode, when an independent fast signal corroborates
//     it — a RST newer than the newest SYN-ACK, or probes unanswered since
//     before the check started (or since just after) — the ladder is cut short and that one
//     failure takes the checker down. Contradictions (a SYN-ACK with a
//     failing HTTP check, resets from a server that passes its checks)
//     are left to the checks: no cut, no change. Compatible mode never
//     cuts the ladder and never damps.
//   - A SYN-ACK from a DOWN endpoint runs the full checks now: every URL,
//     and an HTTP checker's fast_recovery respected (its state machine
//     decides whether one or two passes bring it back).
//   - Flap damping (fast mode): each failure of a real server after a
//     recovery adds 1 to its penalty, which halves every PenaltyHalfLife.
//     From penalty 2, a recovery is passed on only after it has held for
//     HoldBase·2^(penalty-2), at most HoldMax (10 s: a real server that
//     fails and recovers every few seconds is re-added within 15 s of
//     recovering); a failure during the hold cancels it, unseen by IPVS.
//
// Every change passed on carries a [Detection]: the signals, the check,
// the ladder cut, the time since the first signal; the time also goes to
// the lvsprobe_detector_detection_seconds histogram. Forged answers never
// reach the detector (the SYN prober validates its cookies). Its methods
// are safe for concurrent use.
type Detector struct {
	s   *Scheduler
	p   detectorParams
	log *slog.Logger
	now func() time.Time
	m   *detectorMetrics
	out chan Transition

	mu sync.Mutex
	// eps holds the endpoints that have something to remember: those
	// that ever showed a negative signal or a failed check, until they
	// are settled and quiet again (epState.settled). An endpoint without
	// an entry is up with nothing pending, which is every endpoint of a
	// healthy cluster: at 10,000 real servers a state for each cost 6 MB.
	eps       map[netip.AddrPort]*epState
	damp      rsDamping
	reqs      []request // scratch, under mu
	held      int       // recoveries held back now: release looks at the real servers only while there are some
	silent    int       // endpoints with SuspectMisses or more probes unanswered in a row
	silentRun int       // of them, those with MissThreshold or more
	// probesLate is set while the SYN prober says its own timing is
	// unreliable (SetProbesLate): silence then does not cut a ladder.
	probesLate bool
}

// NewDetector attaches a detector to s: from then on s asks it about
// every completed check. Run it to pass s's transitions on.
func NewDetector(s *Scheduler, opts DetectorOptions) (*Detector, error) {
	d := &Detector{
		s: s, log: opts.Log, now: opts.Now, out: make(chan Transition),
		eps: map[netip.AddrPort]*epState{}, damp: rsDamping{},
		p: detectorParams{
			mode:            opts.Mode,
			missThreshold:   orDefault(opts.MissThreshold, DefaultMissThreshold),
			suspectMisses:   orDefault(opts.SuspectMisses, DefaultSuspectMisses),
			passiveResets:   orDefault(opts.PassiveResets, DefaultPassiveResets),
			rstWindow:       orDefault(opts.RSTWindow, DefaultRSTWindow),
			backoffMin:      orDefault(opts.BackoffMin, DefaultBackoffMin),
			backoffMax:      orDefault(opts.BackoffMax, DefaultBackoffMax),
			penaltyHalfLife: orDefault(opts.PenaltyHalfLife, DefaultPenaltyHalfLife),
			holdBase:        orDefault(opts.HoldBase, DefaultHoldBase),
			holdMax:         orDefault(opts.HoldMax, DefaultHoldMax),
		},
	}
	d.p.suspectMisses = min(d.p.suspectMisses, d.p.missThreshold)
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	m, err := newDetectorMetrics(d, opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("register detector metrics: %w", err)
	}
	d.m = m
	if !s.attachDetector(d) {
		return nil, ErrDetectorAttached
	}
	return d, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Mode returns the detector's policy.
func (d *Detector) Mode() DetectorMode { return d.p.mode }

// endpoint returns the state of addr, creating it. The caller holds d.mu.
func (d *Detector) endpoint(addr netip.AddrPort) *epState {
	e := d.eps[addr]
	if e == nil {
		e = &epState{addr: addr}
		d.eps[addr] = e
	}
	return e
}

// Observe hands fast signals to the detector, in the order they were seen.
// Evidence for endpoints no check connects to is ignored. It never blocks
// on the checks it asks for.
func (d *Detector) Observe(evs ...Evidence) {
	now := d.now()
	d.mu.Lock()
	d.reqs = d.reqs[:0]
	for _, ev := range evs {
		if ev.Kind == 0 || ev.Kind >= evidenceKinds {
			continue
		}
		e := d.eps[ev.Target]
		if e == nil {
			if ev.Kind == EvidenceSynAck || ev.Kind == EvidenceLatency {
				continue // an up endpoint that answers: nothing to remember (epState.settled)
			}
			if !d.s.hasEndpoint(ev.Target) {
				continue
			}
			e = d.endpoint(ev.Target)
		}
		was, wasSilent, wasRun := e.phase, e.misses >= d.p.suspectMisses, e.misses >= d.p.missThreshold
		d.trustSilence()
		r, ok := e.observe(&d.p, ev, now)
		if isSilent := e.misses >= d.p.suspectMisses; isSilent != wasSilent {
			if isSilent {
				d.silent++
			} else {
				d.silent--
			}
		}
		if isRun := e.misses >= d.p.missThreshold; isRun != wasRun {
			if isRun {
				d.silentRun++
			} else {
				d.silentRun--
			}
		}
		if ok {
			d.reqs = append(d.reqs, r)
			if e.phase == phaseSuspect {
				d.m.suspicions.WithLabelValues(ev.Kind.String()).Inc()
			}
			d.log.Info("fast signal: running the full checks now", "endpoint", ev.Target.String(),
				"from", was.String(), "to", e.phase.String(), "signal", ev.describe())
		}
		d.settle(e, now)
	}
	reqs := append([]request(nil), d.reqs...)
	d.mu.Unlock()
	for _, r := range reqs {
		if n := d.s.Expedite(r.addr, r.reason); n > 0 {
			d.m.expedited.Inc()
		}
	}
}

// trustSilence decides how far silence is evidence now. Not at all while
// more than 2 endpoints and more than 1 in 20 have MissThreshold probes
// unanswered in a row (the director or its link). While as many have
// missed a probe or more (a crowd: one burst of answers the director's
// link dropped, which they answer again at their next probe), silence
// suspects only at MissThreshold misses. While the SYN prober runs late
// (SetProbesLate) it suspects as usual. In all three cases it
// corroborates a failed check only for an endpoint silent since before
// the doubt began. The caller holds d.mu.
func (d *Detector) trustSilence() {
	n := len(d.s.index().units) // every endpoint checked, with a state or not
	limit := max(2, n/20)
	crowd := d.silent > limit
	many := d.silentRun > limit
	late := d.probesLate
	if many == d.p.silenceUntrusted && crowd == d.p.crowd && late == d.p.probesLate {
		return
	}
	wasDoubted := d.p.doubted()
	was := d.p
	d.p.silenceUntrusted, d.p.crowd, d.p.probesLate = many, crowd, late
	if !wasDoubted && d.p.doubted() {
		d.p.untrustedSince = d.now()
	}
	switch {
	case many && !was.silenceUntrusted:
		d.log.Warn("many endpoints silent at once: the director or its links, not the real servers; silence is not evidence until they answer",
			"silent", d.silentRun, "endpoints", n)
	case late && !was.probesLate:
		d.log.Warn("SYN probes run late (starved director?): silence still suspects, but a failed check it alone corroborates climbs the retry ladder until they are on time")
	case crowd && !many && !was.crowd:
		d.log.Info("many endpoints missed a probe at once (the director's link?): silence suspects only after several misses in a row",
			"missed", d.silent, "misses", d.p.missThreshold, "endpoints", n)
	case !d.p.doubted():
		d.log.Info("silence is evidence again", "silent", d.silent, "endpoints", n)
	}
}

// SetProbesLate tells the detector whether the SYN prober's own timing is
// unreliable (its send loop or its answers late: a starved CPU). A late
// send loop does not make misses up (a probe is missed only when no answer
// reached the kernel, by the kernel's timestamps, before its successor
// left or one interval after it left, and a drain only settles what it
// has read past), but a late drain can:
// answers that overflow the receiver's ring settle as misses
// (lvsprobe_synprobe_kernel_lost_total). So silence still suspects an endpoint
// (the cost of a wrong suspicion is one full check), but while the prober
// is late it cuts a failed check's retry ladder (otherwise keepalived's
// ladder decides, as in compatible mode) only for an endpoint already
// silent (MissThreshold misses) before, or silent for three times
// MissThreshold probes in a row while the others answer (made-up misses
// come in crowds, a probe or two per endpoint). RSTs and SYN-ACKs are still
// evidence: a late answer is still an answer.
func (d *Detector) SetProbesLate(late bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.probesLate == late {
		return
	}
	d.probesLate = late
	d.trustSilence()
}

// corroborates is asked by the scheduler, under its lock, whether a failed
// attempt of an up check on addr that started at start should cut the
// retry ladder.
func (d *Detector) corroborates(addr netip.AddrPort, start time.Time) (string, bool) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.eps[addr]
	if e == nil {
		return "", false
	}
	d.trustSilence()
	why, ok := e.corroborates(&d.p, start, now)
	if ok {
		e.ep.cut = why
		d.m.cuts.Inc()
	}
	return why, ok
}

// checked is told by the scheduler, under its lock, of every completed
// attempt on addr: its result, and whether every check on addr is up after
// it.
func (d *Detector) checked(addr netip.AddrPort, ok, up bool, start time.Time) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.eps[addr]
	if e == nil {
		if ok && up {
			return // an up endpoint that passes: nothing to remember (epState.settled)
		}
		e = d.endpoint(addr)
	}
	was := e.phase
	e.checked(&d.p, ok, up, start, now)
	if was == phaseSuspect && e.phase == phaseUp {
		d.m.falseSuspicions.Inc()
		d.log.Info("suspicion cleared by the full check", "endpoint", addr.String(), "next_request_after", e.maxBackoff())
	}
	d.settle(e, now)
}

// snapshot is the evidence of addrs' current episodes for a change at at,
// taken by the scheduler under its lock when it emits the change: the
// transition is delivered later (Run), when a SYN-ACK may already have
// started an endpoint's next episode, and the change must carry the
// evidence that made it.
func (d *Detector) snapshot(addrs []netip.AddrPort, at time.Time) *Detection {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	det := d.detection(addrs, at)
	det.Stages.Emitted = now
	return det
}

// endEpisode ends the episode of addr once it is up again and its
// recovery has been emitted with the episode's evidence: a later failure
// starts an episode of its own, and a settled endpoint's state can go.
// The scheduler calls it under its lock.
func (d *Detector) endEpisode(addr netip.AddrPort) {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.eps[addr]
	if e == nil || e.phase != phaseUp {
		return
	}
	e.ep = episode{}
	d.settle(e, now)
}

// settle drops e's state once it has nothing left to remember. The caller
// holds d.mu.
func (d *Detector) settle(e *epState, now time.Time) {
	if e.settled(&d.p, now) {
		delete(d.eps, e.addr)
	}
}

// Transitions delivers the scheduler's transitions, with their
// [Detection] and after flap damping, while Run runs; it is closed when
// Run returns. Read it instead of [Scheduler.Transitions].
func (d *Detector) Transitions() <-chan Transition { return d.out }

// Run passes the scheduler's transitions on until the scheduler closes
// them, then closes Transitions. Run the scheduler beside it.
func (d *Detector) Run(ctx context.Context) error {
	defer close(d.out)
	// The release timer runs only while a recovery is held back: an
	// idle detector does not wake up (a wakeup is dear in an emulated
	// or oversubscribed machine).
	tk := time.NewTimer(detectorTick)
	tk.Stop()
	defer tk.Stop()
	armed := false
	in := d.s.Transitions()
	for {
		var pass []Transition
		select {
		case t, ok := <-in:
			if !ok {
				return nil
			}
			pass = d.transition(t)
		case <-tk.C:
			armed = false
			pass = d.release()
		}
		if !armed && d.holding() {
			tk.Reset(detectorTick)
			armed = true
		}
		for _, t := range pass {
			select {
			case d.out <- t:
			case <-ctx.Done():
				// the scheduler closes its channel once stopped; drain it
				for range in {
				}
				return nil
			}
		}
	}
}

// transition damps one transition of the scheduler and attaches its
// evidence: the scheduler's snapshot of it (snapshot), or, for a
// transition without one, the evidence as it is now.
func (d *Detector) transition(t Transition) []Transition {
	var addrs []netip.AddrPort
	if t.Detection == nil {
		addrs = d.s.endpointsOf(t.Key)
	}
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	det := t.Detection
	if det == nil {
		det = d.detection(addrs, t.At)
	}
	dm := d.damp.get(t.Key)
	wasHeld := dm.held != nil
	out, held := dm.onTransition(&d.p, t, now)
	if isHeld := dm.held != nil; isHeld != wasHeld {
		if isHeld {
			d.held++
		} else {
			d.held--
		}
	}
	defer d.damp.settle(t.Key, dm)
	det.Penalty = dm.penalty
	if held > 0 {
		dm.heldDet = det
		d.m.held.Inc()
		d.log.Info("real server recovery held back (flap damping)", "real_server", t.Key.String(),
			"hold", held, "flap_penalty", fmt.Sprintf("%.2f", dm.penalty), "flaps", dm.flaps)
		return nil
	}
	if len(out) == 0 {
		d.log.Info("held recovery cancelled: failed again", "real_server", t.Key.String(),
			"flap_penalty", fmt.Sprintf("%.2f", dm.penalty))
		return nil
	}
	det.Stages.Passed = now
	for i := range out {
		out[i].Detection = det
		d.observeLatency(out[i])
	}
	return out
}

// holding reports whether a recovery is held back now.
func (d *Detector) holding() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.held > 0
}

// release passes on the held recoveries whose time has come. With none
// held it returns at once: it runs every detectorTick while some are held,
// and a scan of every real server's damping (10,000 of them) at that rate
// was the detector's largest cost.
func (d *Detector) release() []Transition {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.held == 0 {
		return nil
	}
	now := d.now()
	var out []Transition
	for _, dm := range d.damp {
		if dm.held == nil {
			continue
		}
		since, det := dm.heldSince, dm.heldDet
		t, ok := dm.due(now)
		if !ok {
			continue
		}
		d.held--
		if det == nil {
			det = &Detection{Signals: "none", FirstSignal: "none"}
		}
		det.Held = now.Sub(since)
		det.Since += det.Held
		det.Penalty = dm.penalty
		det.Stages.Passed = now
		t.Detection = det
		d.observeLatency(t)
		out = append(out, t)
	}
	return out
}

// detection gathers the evidence of addrs' current episodes for a change
// at at. The caller holds d.mu.
func (d *Detector) detection(addrs []netip.AddrPort, at time.Time) *Detection {
	det := &Detection{Signals: "none", FirstSignal: "none"}
	var first time.Time
	var sum episode
	for _, a := range addrs {
		e := d.eps[a]
		if e == nil || e.ep.first.IsZero() {
			continue
		}
		if first.IsZero() || e.ep.first.Before(first) {
			first, det.FirstSignal = e.ep.first, e.ep.firstWhat
			det.Stages.Signal, det.Stages.Suspect = e.ep.first, e.ep.suspected
		}
		if e.ep.checkEnd.After(det.Stages.CheckEnd) {
			det.Stages.CheckStart, det.Stages.CheckEnd = e.ep.checkStart, e.ep.checkEnd
		}
		if f := e.ep.firstCheck; !f.IsZero() && (det.Stages.Confirm.IsZero() || f.Before(det.Stages.Confirm)) {
			det.Stages.Confirm = f
		}
		for k, n := range e.ep.counts {
			sum.counts[k] += n
		}
		sum.checks += e.ep.checks
		if e.ep.cut != "" {
			det.Cut = e.ep.cut
		}
	}
	det.Signals, det.Checks = sum.summary(), sum.checks
	if !first.IsZero() && at.After(first) {
		det.Since = at.Sub(first)
	}
	return det
}

// observeLatency records a passed-on change in the detection histogram.
func (d *Detector) observeLatency(t Transition) {
	dir, trigger := "down", "check"
	if t.Up {
		dir = "up"
	}
	if t.Detection.FirstSignal != "none" && t.Detection.FirstSignal != "failed check" {
		trigger = "fast"
	}
	if t.Detection.FirstSignal == "none" {
		return // a first verdict or a reload: nothing was detected
	}
	d.m.latency.WithLabelValues(dir, trigger).Observe(t.Detection.Since.Seconds())
}

// EndpointStatus is the detector's view of one endpoint.
type EndpointStatus struct {
	Endpoint netip.AddrPort
	State    string        // up, suspect, down, recovering
	Since    time.Time     // when it entered State
	Misses   int           // probes unanswered in a row
	LastRTT  time.Duration // newest handshake time seen
	Backoff  time.Duration // wait before the next requested check after a wrong suspicion
}

// DampingStatus is the flap damping of one real server.
type DampingStatus struct {
	Key       config.RealServerKey
	Penalty   float64   // now, decayed
	Flaps     uint64    // failures after a recovery, ever
	HeldUntil time.Time // a recovery held back until then; zero when none
}

// DetectorStatus is everything `lvsprobe status` shows of the detector.
type DetectorStatus struct {
	Mode      string
	Endpoints []EndpointStatus // sorted by endpoint
	Damping   []DampingStatus  // real servers with a penalty or a held recovery, sorted by key
}

// Status returns the detector's current state.
func (d *Detector) Status() DetectorStatus {
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	st := DetectorStatus{Mode: d.p.mode.String()}
	ix := d.s.index()
	st.Endpoints = make([]EndpointStatus, 0, len(ix.units))
	for a := range ix.units {
		if _, ok := d.eps[a]; !ok {
			st.Endpoints = append(st.Endpoints, EndpointStatus{Endpoint: a, State: phaseUp.String()}) // settled, see d.eps
		}
	}
	for _, e := range d.eps {
		st.Endpoints = append(st.Endpoints, EndpointStatus{Endpoint: e.addr, State: e.phase.String(), Since: e.since,
			Misses: e.misses, LastRTT: e.lastRTT, Backoff: e.maxBackoff()})
	}
	sort.Slice(st.Endpoints, func(i, j int) bool { return st.Endpoints[i].Endpoint.Compare(st.Endpoints[j].Endpoint) < 0 })
	for key, dm := range d.damp {
		if dm == &settledUp {
			continue
		}
		dm.decay(&d.p, now)
		if dm.penalty == 0 && dm.held == nil {
			continue
		}
		ds := DampingStatus{Key: key, Penalty: dm.penalty, Flaps: dm.flaps}
		if dm.held != nil {
			ds.HeldUntil = dm.release
		}
		st.Damping = append(st.Damping, ds)
	}
	sort.Slice(st.Damping, func(i, j int) bool { return st.Damping[i].Key.String() < st.Damping[j].Key.String() })
	return st
}

// forget drops the state of endpoints and real servers that ix, the index
// of a reloaded configuration, no longer has, so that a director reloaded
// for months does not keep every real server it ever checked.
func (d *Detector) forget(ix *epIndex) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for addr, e := range d.eps {
		if _, ok := ix.units[addr]; ok {
			continue
		}
		if e.misses >= d.p.suspectMisses {
			d.silent--
		}
		if e.misses >= d.p.missThreshold {
			d.silentRun--
		}
		delete(d.eps, addr)
	}
	for key, dm := range d.damp {
		if _, ok := ix.plan.byKey[key]; ok {
			continue
		}
		if dm.held != nil {
			d.held--
		}
		delete(d.damp, key)
	}
}
