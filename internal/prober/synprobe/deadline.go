package synprobe

// A probe's miss deadline.
//
// A probe unanswered at min(its successor's departure, its own departure
// + its target's nominal interval) is a miss, declared once the receiver
// has drained every answer that reached the kernel before that deadline
// (settleMisses). At full rate the successor leaves about an interval
// after the probe, so the deadline is the successor's departure as it
// always was; while the rate is backed off (pace.go, up to 16 intervals
// between probes) the probe's own deadline comes first, and a black-holed
// real server's first miss, hence its suspicion, comes one nominal
// interval after its first unanswered probe left, not a stretched one.
//
// An answer that reaches the kernel after the deadline but before the
// successor leaves still counts for its probe (RTT, Answered, and
// ConsecutiveMisses back to 0, a SynAck or Reset signal); the miss already
// declared stands: misses are fast signals, and the detector's full check
// decides what is true.
//
// The successor's departure is a settlement queued by collect (one per
// unanswered probe, in departure order: p.unsettled). The own deadline is
// queued when the probe leaves (stamp, after the token bucket's wait: the
// time its RTT starts from), in a deadlineQueue per nominal interval:
// probes leave in time order, so each queue is in deadline order whatever
// the mix of intervals. A probe is settled once: its bit in the target's
// doneBits is set when it is answered or declared missed.

// deadlineQueue is the own deadlines of the probes sent to targets of one
// nominal interval, oldest first: q[head:] are pending.
type deadlineQueue struct {
	interval uint64
	q        []settlement
	head     int
}

// deadlines are the deadline queues, one per interval with probes pending
// (an empty queue is reused for another interval, so there are never more
// than the distinct intervals probed).
type deadlines struct {
	qs   []deadlineQueue
	last int // the queue of the last push: the usual one
}

// push queues the deadline of probe gen of t, sent at now.
func (d *deadlines) push(t *target, gen uint32, now uint64) {
	s := settlement{t: t, gen: gen, untilNs: now + t.interval}
	if d.last < len(d.qs) && d.qs[d.last].interval == t.interval {
		d.qs[d.last].add(s)
		return
	}
	free := -1
	for i := range d.qs {
		q := &d.qs[i]
		if q.interval == t.interval {
			d.last = i
			q.add(s)
			return
		}
		if free < 0 && q.empty() {
			free = i
		}
	}
	if free < 0 {
		d.qs = append(d.qs, deadlineQueue{})
		free = len(d.qs) - 1
	}
	d.last = free
	q := &d.qs[free]
	q.interval = t.interval
	q.add(s)
}

func (q *deadlineQueue) empty() bool { return q.head == len(q.q) }

// add appends s, reusing the queue's memory: an emptied queue starts over,
// and a queue whose settled head is more than half of it moves its
// pending entries down (each entry is moved at most once on average).
func (q *deadlineQueue) add(s settlement) {
	switch {
	case q.empty():
		q.q, q.head = q.q[:0], 0
	case len(q.q) == cap(q.q) && q.head >= len(q.q)/2:
		n := copy(q.q, q.q[q.head:])
		q.q, q.head = q.q[:n], 0
	}
	q.q = append(q.q, s)
}

// done reports whether probe gen of t needs no settling any more: it was
// answered or declared missed. A probe 64 or more probes old has lost its
// bit: it is done for its own deadline (its successor's settlement, which
// any unanswered probe has by then, declares it).
func (t *target) done(gen uint32) bool {
	return t.gen-gen >= 64 || t.doneBits&(1<<(gen%64)) != 0
}

// nextDeadline returns the earliest own deadline of a probe not done yet
// (false if none), dropping from the queues' heads the probes done already
// (answered: most of them). The caller holds p.mu.
func (p *Prober) nextDeadline() (uint64, bool) {
	var first uint64
	found := false
	for i := range p.deadlines.qs {
		q := &p.deadlines.qs[i]
		for ; q.head < len(q.q); q.head++ {
			st := &q.q[q.head]
			if !st.t.done(st.gen) {
				if !found || st.untilNs < first {
					first, found = st.untilNs, true
				}
				break
			}
			*st = settlement{}
		}
	}
	return first, found
}
