package prober

import "time"

// dueQueue is the scheduler's single timer structure: a binary min-heap of
// units by due time. Each entry carries its unit's due time as a key
// (nanoseconds from the queue's first due time, on the monotonic clock),
// so ordering the heap reads only the heap's own array and never the units
// (384 bytes each, 3.8 MB at 10,000: the comparisons of container/heap
// through the units were 3 % of the daemon's CPU at 10,000 TCP_CHECKs).
// It is not safe for concurrent use; the scheduler guards it.
type dueQueue struct {
	h     []dueEntry
	epoch time.Time // the first due time queued: keys are offsets from it
}

// dueEntry is one queued unit and its due time as a key.
type dueEntry struct {
	at time.Duration // u.due - epoch
	u  *unit
}

// Len returns how many units are queued.
func (q *dueQueue) Len() int { return len(q.h) }

// key returns t as an offset from the epoch (monotonic when both carry a
// monotonic reading, as the scheduler's times do).
func (q *dueQueue) key(t time.Time) time.Duration {
	if q.epoch.IsZero() {
		q.epoch = t
	}
	return t.Sub(q.epoch)
}

// dueOf returns when u is, or was last, due.
func (q *dueQueue) dueOf(u *unit) time.Time { return q.epoch.Add(u.due) }

// schedule queues u to run at due (or moves it there if queued).
func (q *dueQueue) schedule(u *unit, due time.Time) {
	k := q.key(due)
	u.due = k
	if i := int(u.index); i >= 0 {
		q.h[i].at = k
		if !q.down(i) {
			q.up(i)
		}
		return
	}
	q.h = append(q.h, dueEntry{at: k, u: u})
	q.up(len(q.h) - 1)
}

// remove takes u out of the queue if it is queued.
func (q *dueQueue) remove(u *unit) {
	i := int(u.index)
	if i < 0 {
		return
	}
	n := len(q.h) - 1
	if i != n {
		q.h[i] = q.h[n]
		q.h[i].u.index = int32(i)
	}
	q.h[n] = dueEntry{}
	q.h = q.h[:n]
	u.index = -1
	if i < n && !q.down(i) {
		q.up(i)
	}
}

// next returns the unit due first, or nil.
func (q *dueQueue) next() *unit {
	if len(q.h) == 0 {
		return nil
	}
	return q.h[0].u
}

// popDue removes and returns the first unit if it is due at now, or nil.
func (q *dueQueue) popDue(now time.Time) *unit {
	if len(q.h) == 0 || q.h[0].at > q.key(now) {
		return nil
	}
	u := q.h[0].u
	q.remove(u)
	return u
}

// up moves the entry at i towards the root until its parent is not later.
func (q *dueQueue) up(i int) {
	e := q.h[i]
	for i > 0 {
		p := (i - 1) / 2
		if q.h[p].at <= e.at {
			break
		}
		q.h[i] = q.h[p]
		q.h[i].u.index = int32(i)
		i = p
	}
	q.h[i] = e
	e.u.index = int32(i)
}

// down moves the entry at i towards the leaves until no child is earlier;
// it reports whether the entry moved.
func (q *dueQueue) down(i int) bool {
	n, e, i0 := len(q.h), q.h[i], i
	for {
		c := 2*i + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && q.h[r].at < q.h[c].at {
			c = r
		}
		if q.h[c].at >= e.at {
			break
		}
		q.h[i] = q.h[c]
		q.h[i].u.index = int32(i)
		i = c
	}
	q.h[i] = e
	e.u.index = int32(i)
	return i > i0
}
