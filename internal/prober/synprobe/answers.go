package synprobe

import (
	"net/netip"
	"time"
)

// emit queues a signal for the next flush (receiver goroutine only).
func (p *Prober) emit(s Signal) { p.batch = append(p.batch, s) }

// flush hands the queued signals over as one batch.
func (p *Prober) flush() {
	if len(p.batch) == 0 {
		return
	}
	select {
	case p.signals <- p.batch:
		// The next batch is sized like this one, not like the largest
		// ever (cap): one big drain must not make every later batch,
		// however small, a large allocation (it was 84 % of the
		// prober's allocations at 10,000 targets). A batch the consumer
		// gave back is reused (recycle.go).
		p.batch = p.spare.get(len(p.batch) + len(p.batch)/4)
	default:
		p.m.dropped.Add(float64(len(p.batch)))
		p.batch = p.batch[:0]
	}
}

// settleMisses declares missed every probe whose deadline (deadline.go:
// its successor's departure or, if earlier, its own departure plus its
// target's nominal interval) is before upTo and that is still unanswered:
// the receiver has handed up every answer that reached the kernel before
// upTo.
func (p *Prober) settleMisses(upTo uint64) {
	p.mu.Lock()
	n := 0 // of p.unsettled, settled
	// The two kinds of deadline are taken in time order, so that a miss
	// is stamped with the earlier of its probe's two.
	for {
		st, q := (*settlement)(nil), (*deadlineQueue)(nil)
		if n < len(p.unsettled) && p.unsettled[n].untilNs < upTo {
			st = &p.unsettled[n]
		}
		for i := range p.deadlines.qs {
			dq := &p.deadlines.qs[i]
			if dq.head < len(dq.q) {
				if h := &dq.q[dq.head]; h.untilNs < upTo && (st == nil || h.untilNs < st.untilNs) {
					st, q = h, dq
				}
			}
		}
		switch {
		case st == nil:
			p.unsettled = append(p.unsettled[:0], p.unsettled[n:]...)
			p.mu.Unlock()
			p.flush()
			return
		case q == nil: // a successor's departure
			n++
			// A probe 64 or more probes old (settled late, its bit
			// reused) counts as unanswered.
			if t := st.t; t.gen-st.gen >= 64 || !t.done(st.gen) {
				p.miss(*st)
			}
		default: // its own deadline
			q.head++
			if !st.t.done(st.gen) {
				p.miss(*st)
			}
			*st = settlement{} // keeps no removed target alive
		}
	}
}

// miss declares probe st.gen of st.t missed at st.untilNs, unless its
// target was removed. The caller holds p.mu.
func (p *Prober) miss(st settlement) {
	t := st.t
	if p.targets[t.addr] != t {
		return
	}
	if t.gen-st.gen < 64 {
		t.doneBits |= 1 << (st.gen % 64)
	}
	p.m.misses.Inc()
	if st.gen > t.answeredGen {
		t.state.ConsecutiveMisses++
		p.emit(Signal{Target: t.addr, Kind: Miss, ConsecutiveMisses: t.state.ConsecutiveMisses, Stamp: st.untilNs})
	}
}

// handle validates one packet from the receiver and updates its target.
func (p *Prober) handle(ktime uint64, pkt []byte, wireLen int) {
	var a answer
	err := decodeAnswer(pkt, wireLen, &a)
	if err == nil {
		err = p.settle(ktime, &a)
	}
	if err != nil {
		p.m.invalid.WithLabelValues(err.Error()).Inc()
	}
	if p.observe != nil {
		p.observe(err)
	}
}

func (p *Prober) settle(ktime uint64, a *answer) error {
	key := netip.AddrPortFrom(a.src, a.sport)
	p.mu.Lock()
	t, ok := p.targets[key]
	if !ok || a.dst != t.path.local {
		p.mu.Unlock()
		return errUnknown
	}
	if !p.cookies.valid(t.path.local, t.addr.Addr(), a.dport, t.addr.Port(), a.ack) {
		p.mu.Unlock()
		return errBadCookie
	}
	var pr *sent
	switch {
	case t.cur.gen != 0 && a.dport == t.cur.lport:
		pr = &t.cur
	case t.prev.gen != 0 && a.dport == t.prev.lport && ktime < t.prev.untilNs:
		pr = &t.prev
	default:
		p.mu.Unlock()
		return errLate
	}
	if pr.answered {
		p.mu.Unlock()
		return errDuplicate
	}
	rtt := time.Duration(ktime - min(ktime, pr.sentNs))
	pr.answered = true
	t.doneBits |= 1 << (pr.gen % 64)
	t.answeredGen = max(t.answeredGen, pr.gen)
	t.state.Answered++
	t.state.ConsecutiveMisses = 0
	t.state.LastRTT = rtt
	t.state.RSTSeen = a.rst()
	t.state.SynAckSeen = !a.rst()
	kind := SynAck
	if a.rst() {
		kind = Reset
	}
	p.mu.Unlock()
	if kind == SynAck {
		p.m.synacks.Inc()
	} else {
		p.m.resets.Inc()
	}
	p.m.rtt.Observe(rtt.Seconds())
	p.emit(Signal{Target: key, Kind: kind, RTT: rtt, Stamp: ktime})
	return nil
}
