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
// twenty gives back paceStep of the nominal rate (half the current rate
// while that is less), so a starved prober returns to full rate in about
// ten windows once the CPU is free again (additive increase,
// multiplicative decrease, as the full checks' adaptive in-flight limit;
// the increase is gentler near the floor, where +1/8 tripled the rate and
// the next two windows halved it twice, §14).
//
// A change takes effect as each target's next probe is rescheduled: over
// one interval at the old rate (1.6 s at the floor). The window after a
// change therefore starts once it has taken effect: a cut is judged by
// the load it left, not by the probes already scheduled before it.
// Within paceGrace of targets added in bulk (start-up) the rate is not
// cut. Every window's rounds are counted by lateness
// (pace_rounds_total{lateness}), and each change is logged with the
// window's figures.
const (
	paceWindow     = time.Second
	paceLateLimit  = 50 * time.Millisecond // the send loop's; the 10 ms send tick explains 10 ms (answers: twice this, over the 64 ms quiet-poll back-off)
	paceLateRounds = 2                     // late rounds in a window that may cut the rate (one is a hiccup)
	paceMaxStretch = 16                    // the rate never drops below 1/16 of the nominal (every 1.28 s at 80 ms)
	paceStep       = 0.125                 // nominal rate given back per window with at most one late round in twenty
	// paceGrace: after targets are added in bulk (a tenth of those
	// probed, one at least: a small prober's start is a start too), no
	// cut for this long. Start-up is late by nature (the eBPF programs
	// load, every full check runs its first time, the new targets'
	// first probes), and a cut then, to 1/16 in four windows, outlived
	// it; in the emulated kernel lab a 2-target start was 269 ms late.
	paceGrace = 5 * time.Second
	// paceHeldLog: while backed off without a change, one line every
	// this many windows with the window's figures.
	paceHeldLog = 10
)

// pace is the AIMD controller of the probe rate. It is pure logic: the
// send loop passes the clock's readings (ktime, ns) and the lateness it
// saw; pace returns how far the targets' intervals are stretched. It is
// not safe for concurrent use (the send loop owns it).
type pace struct {
	rate       float64       // fraction of the nominal rate, in [1/paceMaxStretch, 1]; 0 means 1 (the zero value is usable)
	winStart   uint64        // ktime the current window started (rounds before it are not counted: the last change takes effect)
	interval   time.Duration // the targets' nominal interval (0: paceWindow's length is the only wait after a change)
	graceUntil uint64        // ktime before which the rate is not cut
	added      int           // targets added in the current window
	held       int           // windows in a row that ended below nominal without a change
	w          paceStats
}

// paceStats are one window's rounds and their lateness.
type paceStats struct {
	rounds      int           // rounds of the send loop
	late        int           // of them, late (by either measure)
	sendLate    int           // of them, the send loop took its first due probe more than paceLateLimit late
	answerLate  int           // of them, an answer drained had waited more than 2*paceLateLimit
	worstSend   time.Duration // the worst send lateness
	worstAnswer time.Duration // the worst answer lateness
	grace       bool          // the window ended within the start-up grace
	held        int           // windows in a row, this one included, that ended below nominal without a change
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
// saw: how late it took the first probe due (sendLate), how long the
// oldest answer it drained had waited (answerLate), and how many targets
// were added since the previous round out of how many are probed. When a
// window ends it adjusts the rate. It returns what changed and, at a
// window's end, the window's figures (rounds 0 otherwise).
func (c *pace) observe(now uint64, sendLate, answerLate time.Duration, added, targets int) (paceChange, paceStats) {
	if c.rate == 0 {
		c.rate = 1
	}
	if c.winStart == 0 {
		c.winStart = now
	}
	if added > 0 {
		c.added += added
		if c.added >= max(1, targets/10) {
			c.graceUntil = now + uint64(paceGrace)
		}
	}
	if now < c.winStart { // the last change is still taking effect
		return paceSame, paceStats{}
	}
	w := &c.w
	w.rounds++
	sl, al := sendLate > paceLateLimit, answerLate > 2*paceLateLimit
	if sl {
		w.sendLate++
	}
	if al {
		w.answerLate++
	}
	if sl || al {
		w.late++
	}
	w.worstSend, w.worstAnswer = max(w.worstSend, sendLate), max(w.worstAnswer, answerLate)
	if now-c.winStart < uint64(paceWindow) {
		return paceSame, paceStats{}
	}
	st := *w
	st.grace = now < c.graceUntil
	old := c.rate
	c.winStart, c.w, c.added = now, paceStats{}, 0
	ch := c.decide(st)
	if ch != paceSame && c.interval > 0 {
		c.winStart = now + uint64(float64(c.interval)/old)
	}
	if ch == paceSame && c.rate < 1 {
		c.held++
	} else {
		c.held = 0
	}
	st.held = c.held
	return ch, st
}

// decide adjusts the rate at the end of a window with figures st.
func (c *pace) decide(st paceStats) paceChange {
	switch {
	case st.late >= paceLateRounds && 4*st.late >= st.rounds:
		if st.grace || c.rate <= 1.0/paceMaxStretch {
			return paceSame
		}
		c.rate = max(c.rate/2, 1.0/paceMaxStretch)
		return paceCut
	case 20*st.late <= st.rounds && c.rate < 1:
		c.rate = min(c.rate+min(paceStep, c.rate/2), 1)
		if c.rate == 1 {
			return paceRestore
		}
		return paceRaised
	}
	return paceSame
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
// log line. added is the targets added since the previous round.
func (p *Prober) paced(pc *pace, now uint64, sendLate, answerLate time.Duration, added int) {
	targets := 0
	if added > 0 {
		targets = p.Len()
	}
	ch, st := pc.observe(now, sendLate, answerLate, added, targets)
	if st.rounds == 0 {
		return
	}
	p.m.paceRounds.WithLabelValues("on_time").Add(float64(st.rounds - st.late))
	if st.sendLate > 0 {
		p.m.paceRounds.WithLabelValues("send_late").Add(float64(st.sendLate))
	}
	if st.answerLate > 0 {
		p.m.paceRounds.WithLabelValues("answer_late").Add(float64(st.answerLate))
	}
	f := pc.factor()
	window := []any{"rounds", st.rounds, "send_late", st.sendLate, "answer_late", st.answerLate,
		"worst_send", st.worstSend.Round(time.Millisecond), "worst_answer", st.worstAnswer.Round(time.Millisecond)}
	if ch == paceSame {
		if f < 1 && st.held%paceHeldLog == 0 {
			// Backed off and not given back for a while: what the
			// window saw, for whoever wonders why.
			p.log.Info("SYN probes still slowed down", append([]any{"rate", f, "windows", st.held}, window...)...)
		} else if st.late >= paceLateRounds && st.grace {
			p.log.Debug("SYN probes late within the start-up grace", window...)
		}
		return
	}
	if p.pinRate > 0 {
		return
	}
	p.mu.Lock()
	p.rate = f
	p.mu.Unlock()
	p.m.rateFactor.Set(f)
	iv := time.Duration(float64(p.cfg.Interval) / f).Round(time.Millisecond)
	switch ch {
	case paceCut:
		p.m.rateCuts.Inc()
		p.log.Warn("SYN probes slowed down: the send loop or the answers are late (starved CPU?)",
			append([]any{"rate", f, "interval", iv}, window...)...)
	case paceRaised:
		p.log.Info("SYN probe rate raised", append([]any{"rate", f, "interval", iv}, window...)...)
	case paceRestore:
		p.log.Info("SYN probes back at their full rate", append([]any{"interval", iv}, window...)...)
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
