package prober

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestDueQueue runs random schedules, reschedules, removals and pops
// against a plain list and checks the queue agrees: popDue returns a unit
// only when due, always one with the earliest due time, and every unit's
// index points at its own entry.
func TestDueQueue(t *testing.T) {
	tests := []struct {
		name  string
		units int
		ops   int
	}{
		{"empty", 0, 10},
		{"one", 1, 100},
		{"few", 7, 2000},
		{"many", 500, 20000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tc.units)))
			base := time.Now()
			var q dueQueue
			units := make([]*unit, tc.units)
			queued := map[*unit]bool{}
			for i := range units {
				units[i] = &unit{index: -1}
			}
			check := func() {
				t.Helper()
				if q.Len() != len(queued) {
					t.Fatalf("Len %d, want %d", q.Len(), len(queued))
				}
				for i, e := range q.h {
					if int(e.u.index) != i || !queued[e.u] {
						t.Fatalf("entry %d: index %d, queued %v", i, e.u.index, queued[e.u])
					}
					if i > 0 && q.h[(i-1)/2].at > e.at {
						t.Fatalf("entry %d earlier than its parent", i)
					}
				}
			}
			for range tc.ops {
				if len(units) == 0 {
					if q.popDue(base.Add(time.Hour)) != nil || q.next() != nil {
						t.Fatal("an empty queue returned a unit")
					}
					continue
				}
				u := units[rng.IntN(len(units))]
				switch op := rng.IntN(4); op {
				case 0, 1: // schedule or move
					q.schedule(u, base.Add(time.Duration(rng.IntN(1000))*time.Millisecond))
					queued[u] = true
				case 2:
					q.remove(u)
					delete(queued, u)
					if u.index != -1 {
						t.Fatalf("removed unit has index %d", u.index)
					}
				case 3:
					now := base.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
					var earliest time.Time
					for v := range queued {
						if earliest.IsZero() || q.dueOf(v).Before(earliest) {
							earliest = q.dueOf(v)
						}
					}
					got := q.popDue(now)
					switch {
					case earliest.IsZero() || earliest.After(now):
						if got != nil {
							t.Fatalf("popDue(%v) returned a unit due %v, none due", now.Sub(base), q.dueOf(got).Sub(base))
						}
					case got == nil:
						t.Fatalf("popDue(%v) returned none, one due at %v", now.Sub(base), earliest.Sub(base))
					case !q.dueOf(got).Equal(earliest):
						t.Fatalf("popDue returned due %v, earliest %v", q.dueOf(got).Sub(base), earliest.Sub(base))
					default:
						delete(queued, got)
						if got.index != -1 {
							t.Fatalf("popped unit has index %d", got.index)
						}
					}
				}
				check()
			}
			// Drain: due times come out in order.
			var out []time.Duration
			for u := q.popDue(base.Add(time.Hour)); u != nil; u = q.popDue(base.Add(time.Hour)) {
				out = append(out, q.dueOf(u).Sub(base))
			}
			if !slices.IsSorted(out) || len(out) != len(queued) {
				t.Fatalf("drained %d units, sorted %v; want %d in order", len(out), slices.IsSorted(out), len(queued))
			}
		})
	}
}

// BenchmarkDueQueue10k is the dispatcher's and completion's work per
// check at 10,000 units: pop the first unit, queue it again a second on.
func BenchmarkDueQueue10k(b *testing.B) {
	var q dueQueue
	base := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		q.schedule(&unit{index: -1}, base.Add(time.Duration(rng.IntN(1000))*time.Millisecond))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		u := q.popDue(base.Add(time.Hour))
		q.schedule(u, q.dueOf(u).Add(time.Second+time.Duration(i%7)*time.Microsecond))
	}
}
