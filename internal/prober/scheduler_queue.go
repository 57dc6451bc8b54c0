package prober

import (
	"container/heap"
	"time"
)

// dueQueue is the scheduler's single timer structure: a min-heap of units
// by due time. It is not safe for concurrent use; the scheduler guards it.
type dueQueue []*unit

func (q dueQueue) Len() int { return len(q) }

func (q dueQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }

func (q dueQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index = int32(i)
	q[j].index = int32(j)
}

// Push implements heap.Interface; use [dueQueue.schedule].
func (q *dueQueue) Push(x any) {
	u := x.(*unit)
	u.index = int32(len(*q))
	*q = append(*q, u)
}

// Pop implements heap.Interface; use [dueQueue.popDue].
func (q *dueQueue) Pop() any {
	old := *q
	n := len(old) - 1
	u := old[n]
	old[n] = nil
	u.index = -1
	*q = old[:n]
	return u
}

// schedule queues u to run at due.
func (q *dueQueue) schedule(u *unit, due time.Time) {
	u.due = due
	if u.index >= 0 {
		heap.Fix(q, int(u.index))
		return
	}
	heap.Push(q, u)
}

// remove takes u out of the queue if it is queued.
func (q *dueQueue) remove(u *unit) {
	if u.index >= 0 {
		heap.Remove(q, int(u.index))
	}
}

// next returns the unit due first, or nil.
func (q dueQueue) next() *unit {
	if len(q) == 0 {
		return nil
	}
	return q[0]
}

// popDue removes and returns the first unit if it is due at now, or nil.
func (q *dueQueue) popDue(now time.Time) *unit {
	u := q.next()
	if u == nil || u.due.After(now) {
		return nil
	}
	return heap.Pop(q).(*unit)
}
