package synprobe

import (
	"math/rand/v2"
	"testing"
)

// TestDueHeapOrder adds, removes and reschedules targets at random and
// checks that the heap always yields the earliest target first and that
// every position it keeps points back at its entry.
func TestDueHeapOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var d due
	live := map[*target]bool{}
	check := func() {
		t.Helper()
		for i, e := range d.ents {
			if d.pos[e.slot] != int32(i) || e.t.slot != e.slot || e.next != e.t.next {
				t.Fatalf("entry %d: %+v, pos %d", i, e, d.pos[e.slot])
			}
			if i > 0 && d.ents[(i-1)/2].next > e.next {
				t.Fatalf("heap order broken at %d", i)
			}
		}
		if d.Len() != len(live) {
			t.Fatalf("%d in heap, %d live", d.Len(), len(live))
		}
	}
	for range 5000 {
		switch op := r.IntN(4); {
		case op == 0 || len(live) == 0:
			tg := &target{next: r.Uint64N(1000)}
			d.add(tg)
			live[tg] = true
		case op == 1:
			for tg := range live {
				d.remove(tg)
				d.remove(tg) // twice is harmless
				delete(live, tg)
				break
			}
		default:
			for tg := range live {
				tg.next = r.Uint64N(1000)
				d.reschedule(tg)
				break
			}
		}
		check()
	}
	last := uint64(0)
	for d.Len() > 0 {
		tg := d.peek()
		if tg.next < last {
			t.Fatalf("out of order: %d after %d", tg.next, last)
		}
		last = tg.next
		d.remove(tg)
		if tg.slot != -1 {
			t.Fatalf("removed target keeps slot %d", tg.slot)
		}
		delete(live, tg)
	}
}
