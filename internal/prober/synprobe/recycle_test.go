package synprobe

import (
	"net/netip"
	"testing"
)

// TestRecycleReusesBatches: a batch given back is the next drain's, and a
// drain, hand-over and give-back cycle allocates nothing (the signal
// batches were over half of lvsprobe's steady allocation at 10,000
// targets before they were recycled).
func TestRecycleReusesBatches(t *testing.T) {
	p := &Prober{signals: make(chan []Signal, 1)}
	sig := Signal{Target: netip.MustParseAddrPort("198.18.1.2:80"), Kind: SynAck}
	drain := func() []Signal {
		for range 100 {
			p.emit(sig)
		}
		p.flush()
		return <-p.signals
	}
	first := drain()
	p.Recycle(first)
	// The drain after first filled the batch taken when first was
	// handed over (new: nothing was given back yet); the one after it
	// fills first again.
	p.Recycle(drain())
	third := drain()
	if len(third) != 100 {
		t.Fatalf("batch of %d signals, want 100", len(third))
	}
	if &third[0] != &first[0] {
		t.Errorf("drain after a give-back allocated a new batch instead of reusing the one given back")
	}
	p.Recycle(third)
	if n := testing.AllocsPerRun(50, func() { p.Recycle(drain()) }); n != 0 {
		t.Errorf("drain + give-back: %v allocations, want 0", n)
	}
}

func TestBatchPoolBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		caps []int
		kept int
	}{
		{"nil batch", []int{0}, 0},
		{"small batches up to the limit", []int{8, 8, 8, 8, 8, 8, 8, 8, 8, 8}, spareBatches},
		{"a batch above the size bound", []int{spareBatchMax + 1}, 0},
		{"at the size bound", []int{spareBatchMax}, 1},
		{"the total bound", []int{spareBatchMax, spareBatchMax, 1}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b batchPool
			for _, c := range tc.caps {
				b.put(make([]Signal, min(c, 3), c))
			}
			if len(b.free) != tc.kept {
				t.Fatalf("kept %d batches, want %d", len(b.free), tc.kept)
			}
			for range tc.kept {
				if s := b.get(1); len(s) != 0 {
					t.Fatalf("recycled batch has %d signals, want 0", len(s))
				}
			}
		})
	}
}
