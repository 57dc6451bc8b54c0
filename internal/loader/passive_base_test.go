package loader

import (
	"testing"
	"unsafe"
)

// TestClientBaseLayout guards the baseline's size: one per observed real
// server (docs/benchmarks.md §8.9).
func TestClientBaseLayout(t *testing.T) {
	if got, max := unsafe.Sizeof(clientBase{}), uintptr(144); got > max {
		t.Errorf("clientBase is %d bytes, more than its budget of %d", got, max)
	}
}

// TestClientBaseDelta: the 32-bit baseline gives the same differences as
// the full counters, across a 32-bit wrap, and 0 for a counter reset.
func TestClientBaseDelta(t *testing.T) {
	const big = 1<<32 - 3 // a counter about to pass 2^32
	for _, tt := range []struct {
		name     string
		old, new uint64
		want     uint64
	}{
		{"unchanged", 7, 7, 0},
		{"grew", 7, 12, 5},
		{"from zero", 0, 1000, 1000},
		{"across 2^32", big, big + 10, 10},
		{"high counts", 5<<32 + 1, 5<<32 + 1001, 1000},
		{"reset below the baseline", 1000, 3, 0},
		{"grew by 2^31-1", 1, 1 << 31, 1<<31 - 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var o, n passivePassiveRsStats
			o.Syns, o.Rsts, o.Lat[5], o.LatSumNs = tt.old, tt.old, tt.old, tt.old
			n.Syns, n.Rsts, n.Lat[5], n.LatSumNs = tt.new, tt.new, tt.new, tt.new
			var b clientBase
			b.set(&o)
			if !b.same(&o) {
				t.Error("same(the baseline) = false")
			}
			if got := b.same(&n); got != (tt.old == tt.new) {
				t.Errorf("same = %v", got)
			}
			d := b.delta(&n)
			full := clientCounters(&n).sub(clientCounters(&o))
			if d.SYNs != tt.want || d.Resets != tt.want || d.Latency[5] != tt.want {
				t.Errorf("delta SYNs %d Resets %d Latency[5] %d, want %d", d.SYNs, d.Resets, d.Latency[5], tt.want)
			}
			if d.LatencySum != full.LatencySum {
				t.Errorf("LatencySum %v, full counters give %v", d.LatencySum, full.LatencySum)
			}
			if tt.old <= tt.new && d != full {
				t.Errorf("delta %+v, full counters give %+v", d, full)
			}
		})
	}
}

// FuzzClientBaseDelta: for any counters that grow by less than 2^31, the
// baseline's differences equal the full counters'.
func FuzzClientBaseDelta(f *testing.F) {
	f.Add(uint64(0), uint32(0))
	f.Add(uint64(1<<32-1), uint32(5))
	f.Fuzz(func(t *testing.T, old uint64, grow uint32) {
		grow &= 1<<31 - 1
		var o, n passivePassiveRsStats
		o.Syns, o.Synacks, o.Lat[27], o.LatCount = old, old, old, old
		n.Syns, n.Synacks, n.Lat[27], n.LatCount = old+uint64(grow), old+uint64(grow), old+uint64(grow), old+uint64(grow)
		if n.Syns < old {
			t.Skip() // the 64-bit counter itself wrapped
		}
		var b clientBase
		b.set(&o)
		if d, full := b.delta(&n), clientCounters(&n).sub(clientCounters(&o)); d != full {
			t.Fatalf("old %d grow %d: delta %+v, full %+v", old, grow, d, full)
		}
	})
}
