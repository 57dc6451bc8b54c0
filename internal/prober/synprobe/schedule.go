package synprobe

import "container/heap"

// due is a min-heap of targets ordered by their next send time (ns of
// CLOCK_MONOTONIC).
type due []*target

func (d due) Len() int           { return len(d) }
func (d due) Less(i, j int) bool { return d[i].next < d[j].next }
func (d due) Swap(i, j int) {
	d[i], d[j] = d[j], d[i]
	d[i].idx, d[j].idx = i, j
}

// Push implements heap.Interface.
func (d *due) Push(x any) {
	t := x.(*target)
	t.idx = len(*d)
	*d = append(*d, t)
}

// Pop implements heap.Interface.
func (d *due) Pop() any {
	old := *d
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*d = old[:len(old)-1]
	t.idx = -1
	return t
}

// peek returns the target due first, or nil.
func (d due) peek() *target {
	if len(d) == 0 {
		return nil
	}
	return d[0]
}

// reschedule restores the heap after t.next changed.
func (d *due) reschedule(t *target) { heap.Fix(d, t.idx) }
