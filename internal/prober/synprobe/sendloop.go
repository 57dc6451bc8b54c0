package synprobe

import (
	"context"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/loader"
	"golang.org/x/time/rate"
)

// sendLoop sends due probes in batches, paced by the global token bucket,
// and, with a receiver that is polled (the eBPF one), drains the answers
// each time it wakes: one thread, one timer.
func (p *Prober) sendLoop(ctx context.Context) error {
	burst := max(p.cfg.Batch, p.cfg.PPS/100)
	lim := rate.NewLimiter(rate.Limit(p.cfg.PPS), burst)
	var bs batches
	bs.init(p.cfg.Batch, min(burst, ringSlots/4))
	ringWarned := false
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	frames, refreshAt := !p.cfg.RawSockets, uint64(0)
	pl, polled := p.recv.(poller)
	got := 0 // answers handed up by the last poll
	pc := pace{interval: p.cfg.Interval}
	var now uint64
	var answerLate time.Duration // how long the oldest answer of the last poll waited for it
	deliver := func(k uint64, pkt []byte, wireLen int) {
		got++
		if k < now {
			answerLate = max(answerLate, time.Duration(now-k))
		}
		p.handle(k, pkt, wireLen)
	}
	if polled {
		defer pl.closePoll()
		defer p.wakeOnRST()()
	}
	pollWait, lastSend := sendTick, uint64(0)
	// A wakeup is the rounds from one wait to the next: it sends at most
	// limit probes, those due within tick (tick.go).
	tick, limit := sendTick, wakeLimit
	budget, woke := 0, true
	wakeSent, wakeOverdue := 0, 0 // probes sent in this wakeup, and of them overdue
	// draining: the last round left probes due (a full batch, or a
	// wakeup that sent its limit), so this one takes a backlog that
	// the spreading itself delays; prevLate is how late the last round
	// took its first probe.
	draining, prevLate := false, time.Duration(0)
	if p.pinRate > 0 {
		p.mu.Lock()
		p.rate = p.pinRate
		p.mu.Unlock()
	}
	var polledAt uint64 // ktime of the last drain
	for {
		now = loader.Ktime()
		answerLate = 0
		polledAt = now
		if polled {
			got = 0
			if err := p.pollAnswers(pl, deliver); err != nil {
				return err
			}
			if got > 0 {
				pollWait = tick
			} else {
				pollWait = min(2*pollWait, pollMax)
			}
		}
		p.sendMu.Lock()
		if p.snd.queued() > 0 { // frames a full device queue held back
			p.snd.flushRings()
		}
		dropped := p.snd.takeDropped()
		p.sendMu.Unlock()
		if dropped > 0 {
			p.m.sendErrors.Add(float64(dropped))
		}
		if frames && now >= refreshAt {
			refreshAt = now + uint64(frameRefresh)
			if err := p.refreshFrames(); err != nil {
				p.log.Warn("prebuilt frames off, probes go through the raw sockets", "err", err)
				frames = false
			}
		}
		var added int
		if woke {
			woke = false
			tick, limit, added = p.wakeup()
			budget = limit
		}
		// Probes due within the next tick go now: one wakeup sends a
		// batch instead of one probe every few microseconds.
		sendLate := p.collect(now, horizonFor(now, tick), &bs, budget)
		late := newLateness(draining, sendLate, prevLate)
		prevLate = sendLate
		// On a grid an answer waits in the ring up to a tick by design:
		// only what is beyond the 10 ms tick's wait counts as late.
		p.paced(&pc, now, late, answerLate-min(answerLate, gridSlack(tick)), added)
		for _, b := range [][]probe{bs.frames, bs.v4, bs.v6} {
			if len(b) == 0 {
				continue
			}
			if err := lim.WaitN(ctx, len(b)); err != nil {
				return ctx.Err()
			}
			p.stamp(b)
			p.sendMu.Lock()
			n, err := p.snd.send(b)
			ringErr := p.snd.ringErr
			p.sendMu.Unlock()
			if ringErr != nil && !ringWarned {
				ringWarned = true
				p.log.Warn("TX ring unavailable, frames go out with sendmmsg", "err", ringErr)
			}
			p.m.sent.Add(float64(n))
			if b[0].f != nil {
				p.m.sentFrames.Add(float64(n))
			}
			if err != nil {
				p.m.sendErrors.Add(float64(len(b) - n))
				p.log.Debug("send probes", "err", err)
			}
		}
		sent := bs.len()
		budget -= sent - bs.overdue
		wakeSent, wakeOverdue = wakeSent+sent, wakeOverdue+bs.overdue
		if sent > 0 {
			pollWait, lastSend = tick, loader.Ktime()
			if bs.full() && (budget > 0 || p.behind(loader.Ktime())) {
				draining = true
				continue // a socket's batch was full: more are due
			}
		}
		// The wakeup ends. On a grid the next drain is a whole tick away:
		// drain now (the ring is mapped: no system call when it is empty),
		// so that a probe whose successor just left is declared missed now
		// rather than a tick later.
		if polled && gridded(tick) && wakeSent > 0 {
			if err := p.pollAnswers(pl, deliver); err != nil {
				return err
			}
		}
		woke, draining = true, budget <= 0
		if n := wakeSent; n > 0 {
			p.m.wakeProbes.Observe(float64(n))
			if p.onWakeup != nil {
				p.onWakeup(n, wakeOverdue, tick)
			}
		}
		wakeSent, wakeOverdue = 0, 0
		wait := time.Second
		now = loader.Ktime()
		p.mu.Lock()
		if t := p.due.peek(); t != nil {
			at := wakeFor(t.next, tick)
			wait = time.Duration(at - min(at, now))
		}
		deadline, pending := uint64(0), false
		if polled {
			deadline, pending = p.nextDeadline()
		}
		p.mu.Unlock()
		if budget <= 0 { // sent its limit: the rest of a backlog goes with the next wakeups
			wait = max(wait, catchUpWait(tick))
		}
		if polled && now-lastSend < uint64(pollSpan) {
			wait = min(wait, pollWait)
		}
		if pending {
			wait = min(wait, settleWait(deadline, polledAt, now, tick))
		}
		p.sendMu.Lock()
		if p.snd.queued() > 0 {
			wait = min(wait, ringRetry)
		}
		p.sendMu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.wake:
		case <-timer.C:
		}
	}
}

// wakeup returns, for a new wakeup of the send loop, the tick and the
// most probes it may send at the current rate (tick.go), and the targets
// added since the last wakeup.
func (p *Prober) wakeup() (tick time.Duration, limit, added int) {
	p.mu.Lock()
	r := p.nominal
	if p.rate > 0 && p.rate < 1 {
		r *= p.rate
	}
	added, p.added = p.added, 0
	shortest := p.intervals.shortest()
	p.mu.Unlock()
	tick, limit = tickFor(r, shortest)
	return tick, limit, added
}

// batches are the probes of one round of the send loop, by the socket
// they leave through.
type batches struct {
	frames, v4, v6 []probe
	overdue        int // of them, probes already due when collected (outside a wakeup's limit)
}

// init sizes the batches: frames (sent through a TX ring with one
// system call however many there are) up to nFrames, the raw sockets'
// up to n (one sendmmsg).
func (bs *batches) init(n, nFrames int) {
	bs.frames, bs.v4, bs.v6 = make([]probe, 0, max(n, nFrames)), make([]probe, 0, n), make([]probe, 0, n)
}

func (bs *batches) reset() {
	bs.frames, bs.v4, bs.v6, bs.overdue = bs.frames[:0], bs.v4[:0], bs.v6[:0], 0
}

func (bs *batches) len() int { return len(bs.frames) + len(bs.v4) + len(bs.v6) }

func (bs *batches) full() bool {
	return len(bs.frames) == cap(bs.frames) || len(bs.v4) == cap(bs.v4) || len(bs.v6) == cap(bs.v6)
}

// add puts pr in the batch of its socket.
func (bs *batches) add(pr probe) {
	switch {
	case pr.f != nil:
		bs.frames = append(bs.frames, pr)
	case pr.remote.Is4():
		bs.v4 = append(bs.v4, pr)
	default:
		bs.v6 = append(bs.v6, pr)
	}
}

// sendTick is the granularity of the send loop: a probe may leave up to a
// tick before it is due. Its interval is kept (the next one is due an
// interval after this one was). At high rates the tick is shorter, and a
// small prober's is a longer grid (tick.go). 10 ms bounds the loop's
// wake-ups at 100 a second however the targets' phases fall (1 ms woke it
// up to 1,000 times a second at 100 targets, most of the prober's cost in
// an emulated guest); probing at 80 ms, a probe is at most an eighth of
// its interval early.
const sendTick = 10 * time.Millisecond

// collect takes the targets due by horizon (until a batch is full or it
// took limit), queues the settlement of their previous probe at this
// departure (if neither answered nor missed yet) and prepares the next
// one into bs. A target with a prebuilt frame and no miss in a row is
// sent as a frame; one that missed goes through the raw socket, whose
// kernel path checks its neighbour again. The send time is stamped just
// before the send (and the probe's own deadline queued, deadline.go). Each target's next probe is due its interval later,
// stretched while the rate is backed off (pace.go). collect returns how
// late the first target it took was (0 if on time or none).
func (p *Prober) collect(now, horizon uint64, bs *batches, limit int) (late time.Duration) {
	bs.reset()
	p.mu.Lock()
	defer p.mu.Unlock()
	size := uint32(p.ports.size())
	for first := true; ; first = false {
		t := p.due.peek()
		// The limit holds back probes not yet due, never late ones: a
		// wakeup that comes late sends its backlog (as many as its
		// batches hold), or the loop would fall further behind at each
		// late wakeup and the back-off would take it for starvation.
		if t == nil || t.next > horizon || bs.full() || (bs.len()-bs.overdue >= limit && t.next > now) {
			return late
		}
		if t.next <= now {
			bs.overdue++
		}
		if first && t.next < now {
			late = time.Duration(now - t.next)
		}
		if t.cur.gen != 0 {
			t.cur.untilNs = now
			if !t.done(t.cur.gen) { // neither answered nor missed at its own deadline
				p.unsettled = append(p.unsettled, settlement{t: t, gen: t.cur.gen, untilNs: now})
			}
		}
		t.prev = t.cur
		t.gen++
		t.doneBits &^= 1 << (t.gen % 64)
		t.cur = sent{gen: t.gen, lport: p.ports.lo + uint16((t.base+t.gen)%size), sentNs: now}
		t.state.Sent++
		pr := probe{local: t.path.local, remote: t.addr.Addr(), lport: t.cur.lport, rport: t.addr.Port(), t: t, gen: t.cur.gen}
		if t.state.ConsecutiveMisses == 0 {
			pr.f = t.path.frame
		}
		pr.seq = p.cookies.seq(pr.local, pr.remote, pr.lport, pr.rport)
		bs.add(pr)
		iv := p.stretch(t.interval)
		t.next += iv
		if t.next <= now { // fell behind (pps cap, a pause): skip, don't burst
			t.next = now + iv
		}
		p.due.reschedule(t)
	}
}

// stamp records the send time of a batch about to leave (after the token
// bucket's wait, so that a paced probe's RTT does not include it) and
// queues each probe's own deadline, an interval later (deadline.go).
func (p *Prober) stamp(b []probe) { p.stampAt(b, loader.Ktime()) }

// stampAt is stamp at ktime now.
func (p *Prober) stampAt(b []probe, now uint64) {
	p.mu.Lock()
	for i := range b {
		if t := b[i].t; t.cur.gen == b[i].gen {
			t.cur.sentNs = now
			p.deadlines.push(t, t.gen, now)
		}
	}
	p.mu.Unlock()
}

// behind reports whether a probe was due by now and is still queued.
func (p *Prober) behind(now uint64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.due.peek()
	return t != nil && t.next <= now
}
