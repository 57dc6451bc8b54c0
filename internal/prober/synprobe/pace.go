package synprobe

import "time"

// Back-off of the probe rate when the director's CPU is starved.
//
// The send loop knows two things a starved CPU cannot hide: how late it
// takes the probes that are due (it should wake when the first is due,
// give or take a tick) and how long an answer waited between the kernel's
// timestamp and the drain that handed it up (a poll interval at most). When
// the send loop is late by more than paceLateLimit, or an answer by more
// than twice that, in a quarter or more of the rounds of one paceWindow
// (and at least paceLateRounds), the probes are too many for the CPU: the
// loop cannot keep up with its schedule, and the probes take the CPU the
// full checks need. A few late rounds a second are other programs' load
// (a busy shared machine stalls any process now and then): backing off
// would not help, and does not happen. The rate is then halved (every
// target's interval doubled), down to 1/paceMaxStretch of the nominal
// rate, at most once a window; each window with at most one late round in
// twenty gives back paceStep of the nominal rate, so a
// starved prober returns to full rate in about 1/paceStep windows once the
// CPU is free again (additive increase, multiplicative decrease, as the
// full checks' adaptive in-flight limit).
const (
	paceWindow     = time.Second
	paceLateLimit  = 50 * time.Millisecond // the send loop's; the 10 ms send tick explains 10 ms (answers: twice this, over the 64 ms quiet-poll back-off)
	paceLateRounds = 2                     // late rounds in a window that may cut the rate (one is a hiccup)
	paceMaxStretch = 16                    // the rate never drops below 1/16 of the nominal (every 1.6 s at 100 ms)
	paceStep       = 0.125                 // nominal rate given back per window with at most one late round in twenty
)

// pace is the AIMD controller of the probe rate. It is pure logic: the
// send loop passes the clock's readings (ktime, ns) and the lateness it
// saw; pace returns how far the targets' intervals are stretched. It is
// not safe for concurrent use (the send loop owns it).
type pace struct {
	rate     float64 // fraction of the nominal rate, in [1/paceMaxStretch, 1]; 0 means 1 (the zero value is usable)
	winStart uint64  // ktime the current window started
	rounds   int     // rounds of the window
	late     int     // of them, late
	worst    time.Duration
}

// paceChange is what one window's end decided.
type paceChange int

const (
	paceSame    paceChange = iota
	paceCut                // the rate was halved
	paceRaised             // the rate went up, still below nominal
	paceRestore            // the rate is back at nominal
)

// observe records one round of the send loop at now with the lateness it
// saw: how late it took the first probe due (sendLate) and how long the
// oldest answer it drained had waited (answerLate). When a window ends it
// adjusts the rate. It returns what changed and the window's worst
// lateness.
func (c *pace) observe(now uint64, sendLate, answerLate time.Duration) (paceChange, time.Duration) {
	if c.rate == 0 {
		c.rate = 1
	}
	if c.winStart == 0 {
		c.winStart = now
	}
	c.rounds++
	if sendLate > paceLateLimit || answerLate > 2*paceLateLimit {
		c.late++
	}
	c.worst = max(c.worst, sendLate, answerLate)
	if now-c.winStart < uint64(paceWindow) {
		return paceSame, 0
	}
	lateRounds, rounds, worst := c.late, c.rounds, c.worst
	c.winStart, c.late, c.rounds, c.worst = now, 0, 0, 0
	switch {
	case lateRounds >= paceLateRounds && 4*lateRounds >= rounds:
		if c.rate <= 1.0/paceMaxStretch {
			return paceSame, worst
		}
		c.rate = max(c.rate/2, 1.0/paceMaxStretch)
		return paceCut, worst
	case 20*lateRounds <= rounds && c.rate < 1:
		c.rate = min(c.rate+paceStep, 1)
		if c.rate == 1 {
			return paceRestore, worst
		}
		return paceRaised, worst
	}
	return paceSame, worst
}

// factor returns the fraction of the nominal rate probes go at.
func (c *pace) factor() float64 {
	if c.rate == 0 {
		return 1
	}
	return c.rate
}

// paced feeds one round of the send loop to pc and applies what it
// decides: the rate collect stretches the intervals by, the metrics and a
// log line.
func (p *Prober) paced(pc *pace, now uint64, sendLate, answerLate time.Duration) {
	ch, worst := pc.observe(now, sendLate, answerLate)
	if ch == paceSame {
		return
	}
	f := pc.factor()
	p.mu.Lock()
	p.rate = f
	p.mu.Unlock()
	p.m.rateFactor.Set(f)
	iv := time.Duration(float64(p.cfg.Interval) / f).Round(time.Millisecond)
	switch ch {
	case paceCut:
		p.m.rateCuts.Inc()
		p.log.Warn("SYN probes slowed down: the send loop or the answers are late (starved CPU?)",
			"rate", f, "interval", iv, "worst_lateness", worst.Round(time.Millisecond))
	case paceRaised:
		p.log.Debug("SYN probe rate raised", "rate", f, "interval", iv)
	case paceRestore:
		p.log.Info("SYN probes back at their full rate", "interval", iv)
	}
}

// BackedOff reports whether the prober has slowed its probes down because
// its send loop or the answers run late (a starved CPU): its silences are
// then not evidence against the real servers.
func (p *Prober) BackedOff() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rate > 0 && p.rate < 1
}

// stretch returns interval (ns) stretched by the backed-off rate. The
// caller holds p.mu.
func (p *Prober) stretch(interval uint64) uint64 {
	if p.rate == 0 || p.rate >= 1 {
		return interval
	}
	return uint64(float64(interval) / p.rate)
}
