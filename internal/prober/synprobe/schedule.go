package synprobe

// due is a min-heap of targets ordered by their next send time (ns of
// CLOCK_MONOTONIC). Each entry carries its send time and its target's
// slot, and the heap positions live in one dense slice indexed by slot:
// moving entries touches only the heap's own memory, never the targets
// (with 10,000 targets, following a pointer per comparison and per move
// was the prober's largest user-space cost).
type due struct {
	ents []dueEntry
	pos  []int32 // pos[slot]: index in ents of the target in that slot, -1 if none
	free []int32 // slots to reuse
}

// dueEntry is one target in the heap.
type dueEntry struct {
	next uint64 // t.next when it was last (re)scheduled
	slot int32  // t.slot
	t    *target
}

// Len returns the number of targets in the heap.
func (d *due) Len() int { return len(d.ents) }

// add puts t in the heap at t.next, giving it a slot.
func (d *due) add(t *target) {
	if n := len(d.free); n > 0 {
		t.slot, d.free = d.free[n-1], d.free[:n-1]
	} else {
		t.slot = int32(len(d.pos))
		d.pos = append(d.pos, -1)
	}
	i := len(d.ents)
	d.ents = append(d.ents, dueEntry{next: t.next, slot: t.slot, t: t})
	d.pos[t.slot] = int32(i)
	d.up(i)
}

// remove takes t out of the heap, if it is in it.
func (d *due) remove(t *target) {
	if t.slot < 0 || int(t.slot) >= len(d.pos) || d.pos[t.slot] < 0 || d.ents[d.pos[t.slot]].t != t {
		return
	}
	i, last := int(d.pos[t.slot]), len(d.ents)-1
	d.pos[t.slot] = -1
	d.free = append(d.free, t.slot)
	t.slot = -1
	if i != last {
		d.ents[i] = d.ents[last]
		d.pos[d.ents[i].slot] = int32(i)
	}
	d.ents[last] = dueEntry{}
	d.ents = d.ents[:last]
	if i != last {
		d.fix(i)
	}
}

// peek returns the target due first, or nil.
func (d *due) peek() *target {
	if len(d.ents) == 0 {
		return nil
	}
	return d.ents[0].t
}

// reschedule restores the heap after t.next changed.
func (d *due) reschedule(t *target) {
	i := int(d.pos[t.slot])
	d.ents[i].next = t.next
	d.fix(i)
}

func (d *due) fix(i int) {
	if !d.down(i) {
		d.up(i)
	}
}

func (d *due) swap(i, j int) {
	d.ents[i], d.ents[j] = d.ents[j], d.ents[i]
	d.pos[d.ents[i].slot], d.pos[d.ents[j].slot] = int32(i), int32(j)
}

func (d *due) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if d.ents[p].next <= d.ents[i].next {
			return
		}
		d.swap(i, p)
		i = p
	}
}

// down sifts entry i down and reports whether it moved.
func (d *due) down(i int) bool {
	i0, n := i, len(d.ents)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && d.ents[r].next < d.ents[l].next {
			c = r
		}
		if d.ents[i].next <= d.ents[c].next {
			break
		}
		d.swap(i, c)
		i = c
	}
	return i > i0
}
