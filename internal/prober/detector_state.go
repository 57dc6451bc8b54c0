package prober

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// phase is where one endpoint is in the detector's state machine (see the
// [Detector] documentation).
type phase uint8

// Phases of an endpoint.
const (
	phaseUp         phase = iota // the full checks pass; fast signals watched for suspicion
	phaseSuspect                 // a fast signal says it failed; the confirmation check runs now
	phaseDown                    // the full checks failed; fast signals watched for a recovery
	phaseRecovering              // a SYN-ACK from a down endpoint; the full checks run now
)

// String names the phase for logs and status.
func (p phase) String() string {
	switch p {
	case phaseUp:
		return "up"
	case phaseSuspect:
		return "suspect"
	case phaseDown:
		return "down"
	case phaseRecovering:
		return "recovering"
	}
	return "unknown"
}

// episode is the evidence gathered since an endpoint's state was last
// settled: what was seen first, when, and how much of each kind.
type episode struct {
	first     time.Time    // the first signal (or failed check) of the episode; zero: none
	firstWhat string       // what it was
	firstKind EvidenceKind // the kind of signal it was; 0 for a failed check
	counts    [evidenceKinds]int
	checks    int       // full check attempts that completed in the episode
	failed    int       // of them failed
	cut       string    // the corroboration that cut the retry ladder, "" if none
	suspected time.Time // when the detector acted on the first signal (asked for the checks); zero: it did not
	// checkStart and checkEnd are the newest completed check attempt of
	// the episode: for a change, the one that decided it.
	checkStart, checkEnd time.Time
	firstCheck           time.Time // the start of the episode's first completed attempt (the confirming check)
}

// summary renders the episode's evidence for logs: "rst×3 silence×0 ...".
func (e *episode) summary() string {
	var b strings.Builder
	for k := EvidenceKind(1); k < evidenceKinds; k++ {
		if n := e.counts[k]; n > 0 {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s×%d", k, n)
		}
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// epState is the detector's view of one checked and probed address and
// port. It is pure state: every method takes the time it acts at.
type epState struct {
	addr         netip.AddrPort
	phase        phase
	since        time.Time // when the phase was entered
	lastPos      time.Time // newest SYN-ACK
	lastNeg      time.Time // newest negative signal (RST, silence past the threshold, passive)
	lastHard     time.Time // newest negative signal other than silence (RST, passive): a later silence must not hide it
	lastHardKind EvidenceKind
	silenceSince time.Time // first miss of the current run of unanswered probes; zero when answered
	silentAt     time.Time // when the current run reached missThreshold misses; zero before
	misses       int       // probes unanswered in a row
	lastRTT      time.Duration
	backoff      [evidenceKinds]time.Duration // by the kind of signal that started it: the wait after a request that found nothing
	nextAllowed  [evidenceKinds]time.Time     // by kind: no check is requested on such a signal before this
	lastCheck    time.Time                    // when the newest full check attempt completed
	ep           episode
}

// detectorParams are the thresholds of the state machine; see
// [DetectorOptions] for their meaning.
type detectorParams struct {
	mode            DetectorMode
	missThreshold   int
	suspectMisses   int
	passiveResets   int
	rstWindow       time.Duration
	backoffMin      time.Duration
	backoffMax      time.Duration
	penaltyHalfLife time.Duration
	holdBase        time.Duration
	holdMax         time.Duration
	// silenceUntrusted is set while too many endpoints have
	// missThreshold probes unanswered at once: then the silence is the
	// director's (its own link, a stall), not the real servers', and it
	// is neither a suspicion nor a corroboration.
	silenceUntrusted bool
	// probesLate is set while the SYN prober runs late: silence still
	// suspects, but corroborates only an endpoint silent since before.
	probesLate bool
	// crowd is set while many endpoints have missed a probe at once
	// but few have missed missThreshold in a row: a burst of answers
	// lost on the director's side, answered again at the next probe.
	// Silence then suspects only at missThreshold misses.
	crowd bool
	// untrustedSince is when silence was last doubted (untrusted, or a
	// crowd) after being trusted. An endpoint that had missThreshold
	// misses before then was silent while the others answered: its
	// silence is its own and still corroborates.
	untrustedSince time.Time
}

// doubted reports whether silence is doubted now (untrusted, a crowd, or
// the prober late): it then corroborates only an endpoint silent since
// before untrustedSince.
func (p *detectorParams) doubted() bool { return p.silenceUntrusted || p.crowd || p.probesLate }

// negative reports whether ev says the endpoint does not serve: a RST, a
// run of unanswered probes reaching the endpoint's threshold (misses),
// resets or unanswered SYNs on live traffic.
func (p *detectorParams) negative(ev Evidence, misses int) bool {
	switch ev.Kind {
	case EvidenceReset, EvidencePassiveUnanswered:
		return true
	case EvidenceSilence:
		return ev.Count >= misses && !p.silenceUntrusted
	case EvidencePassiveReset:
		return ev.Count >= p.passiveResets
	}
	return false
}

// request is a confirmation or recovery check the detector asks for.
type request struct {
	addr   netip.AddrPort
	reason string
}

// observe applies one fast signal at now and returns whether a full check
// should run now, and why.
func (e *epState) observe(p *detectorParams, ev Evidence, now time.Time) (request, bool) {
	at := ev.At
	if at.IsZero() {
		at = now
	}
	switch ev.Kind {
	case EvidenceSynAck:
		e.lastPos, e.misses, e.silenceSince, e.silentAt = at, 0, time.Time{}, time.Time{}
		if ev.RTT > 0 {
			e.lastRTT = ev.RTT
		}
	case EvidenceReset:
		e.misses, e.silenceSince, e.silentAt = 0, time.Time{}, time.Time{}
	case EvidenceSilence:
		if e.silenceSince.IsZero() || ev.Count <= 1 {
			e.silenceSince, e.silentAt = at, time.Time{}
		}
		e.misses = ev.Count
		if e.misses >= p.missThreshold && e.silentAt.IsZero() {
			e.silentAt = at
		}
	case EvidenceLatency:
		if ev.RTT > 0 {
			e.lastRTT = ev.RTT
		}
		return request{}, false
	}
	neg := p.negative(ev, e.suspectMisses(p, now))
	if neg {
		e.lastNeg = at
		if ev.Kind != EvidenceSilence {
			e.lastHard, e.lastHardKind = at, ev.Kind
		}
	}
	if (e.phase == phaseSuspect || e.phase == phaseRecovering) && e.lastCheck.Before(e.since) && now.Sub(e.since) > p.backoffMax {
		// the check asked for never reported (its block went away in a
		// reload): start over from the last settled phase. Once a check
		// has reported, the checks' own schedule decides (an HTTP check
		// that forgot its failure comes up a delay_loop later, at once
		// with fast_recovery).
		e.phase = map[phase]phase{phaseSuspect: phaseUp, phaseRecovering: phaseDown}[e.phase]
	}
	switch e.phase {
	case phaseUp:
		if !neg || !(e.allowed(p, ev.Kind, now) || longSilence(p, ev)) {
			return request{}, false
		}
		e.enter(phaseSuspect, now)
		e.ep = episode{first: at, firstWhat: ev.Kind.String(), firstKind: ev.Kind, suspected: now}
		e.ep.counts[ev.Kind]++
		return request{e.addr, "suspect: " + ev.describe()}, true
	case phaseDown:
		if ev.Kind != EvidenceSynAck {
			return request{}, false
		}
		if !e.allowed(p, ev.Kind, now) {
			return request{}, false
		}
		e.enter(phaseRecovering, now)
		e.ep = episode{first: at, firstWhat: ev.Kind.String(), firstKind: ev.Kind, suspected: now}
		e.ep.counts[ev.Kind]++
		return request{e.addr, "recovering: " + ev.describe()}, true
	default: // suspect, recovering: the check already asked for decides
		if neg || ev.Kind == EvidenceSynAck {
			e.ep.counts[ev.Kind]++
		}
		return request{}, false
	}
}

// longSilence reports whether ev is a silence long enough to suspect an
// endpoint even while the backoff of a wrong silence suspicion runs:
// 2·MissThreshold probes unanswered in a row (6). The backoff keeps a
// lossy path from raising a check on every few lost probes (at 30 % loss
// 3 in a row end 2.7 % of probes, 6 in a row 0.07 %: one check in about
// 20 minutes at 10 probes a second); it used to hold a black hole that
// came within it unsuspected until it ran out (1 s, doubling to 30 s),
// and on a director whose link drops a burst of answers now and then
// many endpoints carry such a backoff (docs/benchmarks.md §17.3).
func longSilence(p *detectorParams, ev Evidence) bool {
	return ev.Kind == EvidenceSilence && ev.Count >= 2*p.missThreshold
}

// suspectMisses is how many probes unanswered in a row suspect the
// endpoint at now: p.suspectMisses, or p.missThreshold while a wrong
// silence suspicion is remembered (its backoff expired less than
// backoffMax ago), so that a lossy path is not checked on every lost
// probe, and while many endpoints missed a probe at once (p.crowd), so
// that a burst lost on the director's side is not a storm of checks.
func (e *epState) suspectMisses(p *detectorParams, now time.Time) int {
	if p.crowd {
		return p.missThreshold
	}
	if t := e.nextAllowed[EvidenceSilence]; e.backoff[EvidenceSilence] > 0 && !t.IsZero() && now.Sub(t) <= p.backoffMax {
		return p.missThreshold
	}
	return p.suspectMisses
}

// enter moves to phase ph at now.
func (e *epState) enter(ph phase, now time.Time) {
	e.phase, e.since = ph, now
}

// corroborates reports whether a full check of the endpoint that started
// at start and failed at now is confirmed by an independent fast signal,
// and by which: a RST (or resets and unanswered SYNs on live traffic) newer
// than the newest SYN-ACK and at most rstWindow old or seen since the
// check started, or probes unanswered (MissThreshold or more in a row, no
// SYN-ACK since) since before the check started or since at most
// silenceLead into it (a lossy path answers some of them; a dead or
// black-holed one none).
func (e *epState) corroborates(p *detectorParams, start, now time.Time) (string, bool) {
	if p.mode != DetectFast {
		return "", false
	}
	// A negative signal seen while the check ran is as fresh as the
	// check, however long its timeout: the clients' retransmitted SYNs
	// of a black-holed server come every 1, 2, 4 s, and one seen 2.2 s
	// before a 3 s check failed used to be too old to count.
	fresh := now.Sub(e.lastHard) <= p.rstWindow || !e.lastHard.Before(start)
	if !e.lastHard.IsZero() && e.lastHard.After(e.lastPos) && fresh {
		return fmt.Sprintf("%s %v before", e.lastHardKind, now.Sub(e.lastHard).Round(time.Millisecond)), true
	}
	// While silence is untrusted, the endpoint's own silence is one that
	// had already reached missThreshold misses when the crowd's began: a
	// first miss a few milliseconds earlier is the crowd's (the first of
	// a stalled director's misses handed over), not the endpoint's.
	ownSilence := !p.doubted() || (!e.silentAt.IsZero() && e.silentAt.Before(p.untrustedSince)) ||
		(p.probesLate && !p.crowd && !p.silenceUntrusted && e.misses >= lateMisses*p.missThreshold)
	if ownSilence && e.misses >= p.missThreshold && !e.silenceSince.IsZero() && e.lastPos.Before(e.silenceSince) {
		if !e.silenceSince.After(start) {
			return fmt.Sprintf("%d probes unanswered since %v before the check", e.misses,
				start.Sub(e.silenceSince).Round(time.Millisecond)), true
		}
		if lead := e.silenceSince.Sub(start); lead <= silenceLead(now.Sub(start)) {
			return fmt.Sprintf("%d probes unanswered since %v into the check", e.misses,
				lead.Round(time.Millisecond)), true
		}
	}
	return "", false
}

// lateMisses: while the SYN prober runs late (detectorParams.probesLate),
// an endpoint's silence corroborates a failed check only at lateMisses
// times missThreshold probes unanswered in a row (9), and only while the
// other endpoints answer (no crowd). A late prober makes misses up in two
// ways: answers lost when its ring buffer overflows, and answers the
// director's link drops when a late send loop sends its backlog in one
// burst; both hit many endpoints a probe or two at a time (a crowd), not
// one endpoint nine probes in a row while the others answer. Before this,
// silence cut no ladder at all while the prober was late, and a
// black-holed real server on a loaded director climbed it (5 s more,
// §17.3).
const lateMisses = 3

// maxSilenceLead is the most a silence may begin after a failed check
// started and still corroborate it (see silenceLead).
const maxSilenceLead = 300 * time.Millisecond

// silenceLead is how long after the start of a failed check of span
// span its endpoint's silence may have begun and still corroborate it: a
// quarter of the span, at most maxSilenceLead. A real server black-holed
// just before a scheduled check started (the check's SYN was the first
// packet lost) is silent only from its first unanswered probe's deadline
// (its successor's departure, or one interval after it left), up to two
// probe intervals (200 ms) later; its
// check times out at connect_timeout, and demanding a silence older than
// the check sent it up the retry ladder (connect_timeout more, §17.3). A
// silence that covers at least three quarters of the check, unbroken by
// a SYN-ACK, is as strong a witness as one older than it: at 30 % loss a
// 3 s check spans 27 probes and more in a row (0.3^27), a 1 s check 8.
func silenceLead(span time.Duration) time.Duration {
	return min(maxSilenceLead, max(span, 0)/4)
}

// checked applies the result of one full check attempt: ok is its result,
// up whether every check of the endpoint is up after it, start when the
// attempt started.
func (e *epState) checked(p *detectorParams, ok, up bool, start, now time.Time) {
	e.lastCheck = now
	if e.ep.first.IsZero() && !ok {
		e.ep = episode{first: start, firstWhat: "failed check"}
	}
	if !e.ep.first.IsZero() {
		e.ep.checkStart, e.ep.checkEnd = start, now
		if e.ep.checks == 0 {
			e.ep.firstCheck = start
		}
		e.ep.checks++
		if !ok {
			e.ep.failed++
		}
	}
	switch {
	case !up && (e.phase == phaseUp || e.phase == phaseSuspect):
		e.enter(phaseDown, now)
		e.resetBackoff()
	case !up && e.phase == phaseRecovering && !ok:
		e.enter(phaseDown, now) // listening, but the checks still fail: try again later
		e.grow(p, now)
	case up && e.phase == phaseSuspect && ok:
		e.enter(phaseUp, now) // the signal was wrong (loss, load): the check says it serves
		e.grow(p, now)
		e.ep = episode{}
	case up && (e.phase == phaseDown || e.phase == phaseRecovering):
		e.enter(phaseUp, now)
		e.resetBackoff()
	case up && e.phase == phaseUp && ok:
		e.ep = episode{} // a failure the ladder absorbed
	}
}

// grow doubles the wait before a signal of the kind that started the
// episode requests a check again.
func (e *epState) grow(p *detectorParams, now time.Time) {
	k := e.ep.firstKind
	e.backoff[k] = min(max(2*e.backoff[k], p.backoffMin), p.backoffMax)
	e.nextAllowed[k] = now.Add(e.backoff[k])
}

// allowed reports whether a signal of kind k may request a check at now.
// A backoff that expired more than backoffMax ago is forgotten: the
// signals were right, or quiet, long enough.
func (e *epState) allowed(p *detectorParams, k EvidenceKind, now time.Time) bool {
	if now.Before(e.nextAllowed[k]) {
		return false
	}
	if now.Sub(e.nextAllowed[k]) > p.backoffMax {
		e.backoff[k] = 0
	}
	return true
}

// resetBackoff forgets every backoff: the endpoint really changed.
func (e *epState) resetBackoff() {
	e.backoff = [evidenceKinds]time.Duration{}
	e.nextAllowed = [evidenceKinds]time.Time{}
}

// settled reports whether e has nothing left that an endpoint without
// a state lacks, at now: up, no episode, no unanswered probes, no negative
// signal young enough to corroborate a failure, no backoff still running
// or remembered. Such a state is dropped (Detector.settle); what it loses
// does not matter: its newest SYN-ACK and RTT are only compared with
// negative signals that come later, and its last check time only with the
// start of a suspicion that comes later.
func (e *epState) settled(p *detectorParams, now time.Time) bool {
	if e.phase != phaseUp || e.misses != 0 || !e.silenceSince.IsZero() || !e.silentAt.IsZero() || !e.ep.first.IsZero() || e.ep.cut != "" {
		return false
	}
	if !e.lastNeg.IsZero() && now.Sub(e.lastNeg) <= p.rstWindow {
		return false
	}
	for _, t := range e.nextAllowed { // a backoff that expired more than backoffMax ago is forgotten (allowed)
		if !t.IsZero() && now.Sub(t) <= p.backoffMax {
			return false
		}
	}
	return true
}

// maxBackoff is the longest current backoff, for status.
func (e *epState) maxBackoff() time.Duration {
	return slices.Max(e.backoff[:])
}

// damping is the flap damping of one real server: a penalty that grows
// by one with every failure after a recovery and halves every
// penaltyHalfLife, and the recovery it holds back.
type damping struct {
	penalty   float64
	at        time.Time // when penalty was last brought up to date
	flaps     uint64    // failures after a recovery, ever
	reported  bool      // up as last passed on (valid once known)
	known     bool
	held      *Transition // a recovery held back, released at release
	heldDet   *Detection  // its evidence
	release   time.Time
	heldSince time.Time
}

// penaltyMax caps the flap penalty, so a real server that flapped for
// an hour is treated like one that flapped for minutes once it is stable
// (8 halves to below 2 in two minutes).
const penaltyMax = 8

// decay brings the penalty up to date at now.
func (d *damping) decay(p *detectorParams, now time.Time) {
	if !d.at.IsZero() && now.After(d.at) && p.penaltyHalfLife > 0 {
		d.penalty *= math.Exp2(-float64(now.Sub(d.at)) / float64(p.penaltyHalfLife))
		if d.penalty < 0.01 {
			d.penalty = 0
		}
	}
	d.at = now
}

// hold is how long a recovery is held back at penalty: nothing below 2
// (a first failure is no flap), then holdBase doubling with each further
// point, never more than holdMax.
func (p *detectorParams) hold(penalty float64) time.Duration {
	if p.mode != DetectFast || penalty < 2 {
		return 0
	}
	h := float64(p.holdBase) * math.Exp2(min(penalty, penaltyMax)-2)
	return min(time.Duration(h), p.holdMax)
}

// onTransition passes one change of a real server's health from the
// scheduler through the damping at now. It returns the transitions to pass
// on now (none, or t), and whether t was held back.
func (d *damping) onTransition(p *detectorParams, t Transition, now time.Time) (out []Transition, held time.Duration) {
	d.decay(p, now)
	if !t.Up {
		if d.known && d.reported || d.held != nil {
			d.penalty = min(d.penalty+1, penaltyMax)
			d.flaps++
		}
		if d.held != nil { // failed again while held: IPVS never saw it come back
			d.held = nil
			return nil, 0
		}
		d.known, d.reported = true, false
		return []Transition{t}, 0
	}
	if h := p.hold(d.penalty); h > 0 && d.known && !d.reported {
		d.held, d.heldSince, d.release = &t, now, now.Add(h)
		return nil, h
	}
	d.known, d.reported = true, true
	return []Transition{t}, 0
}

// due releases a held recovery whose time has come.
func (d *damping) due(now time.Time) (Transition, bool) {
	if d.held == nil || now.Before(d.release) {
		return Transition{}, false
	}
	t := *d.held
	d.held = nil
	d.known, d.reported = true, true
	return t, true
}

// rsDamping is the damping of every real server, by key. Every real
// server reported up with no flap ever, nothing held (nearly all of them),
// shares one state, settledUp: a damping each cost 2.6 MB at 10,000.
type rsDamping map[config.RealServerKey]*damping

// settledUp is the shared damping of the real servers that are known,
// reported up, never flapped and hold nothing. It is never changed.
var settledUp = damping{known: true, reported: true}

// get returns key's damping for a change, creating it (a private copy of
// settledUp for the real servers that share it).
func (m rsDamping) get(key config.RealServerKey) *damping {
	d := m[key]
	if d == nil || d == &settledUp {
		d = &damping{known: d != nil, reported: d != nil}
		m[key] = d
	}
	return d
}

// settle makes key share settledUp again if its damping d has nothing
// else to remember.
func (m rsDamping) settle(key config.RealServerKey, d *damping) {
	if d != &settledUp && d.known && d.reported && d.penalty == 0 && d.flaps == 0 && d.held == nil {
		m[key] = &settledUp
	}
}
