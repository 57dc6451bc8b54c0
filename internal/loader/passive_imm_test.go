package loader

import (
	"testing"

	"github.com/cilium/ebpf/asm"
)

// TestPassiveImmediates checks that the embedded object's hot paths take
// every load-time immediate from the loader: each marker is there before
// patchImmediates, none after, and a marker without a value is refused.
func TestPassiveImmediates(t *testing.T) {
	markers := func(t *testing.T, vals map[string]uint64) (found map[uint64]int, patched int, err error) {
		spec, err := loadPassive()
		if err != nil {
			t.Fatal(err)
		}
		found = map[uint64]int{}
		count := func() {
			for _, prog := range spec.Programs {
				for _, ins := range prog.Instructions {
					if ins.IsConstantLoad(asm.DWord) {
						if _, ok := immVars[uint64(ins.Constant)]; ok {
							found[uint64(ins.Constant)]++
						}
					}
				}
			}
		}
		count()
		before := len(found)
		if before != len(immVars)-1 || found[immHsMask] != 0 {
			t.Fatalf("object has %d of the %d current markers: %v", before, len(immVars)-1, found)
		}
		patched, err = patchImmediates(spec, vals)
		found = map[uint64]int{}
		count()
		return found, patched, err
	}
	all := map[string]uint64{passiveVarEpMask: 1023, passiveVarEpSeed: 7, passiveVarRsSlots: 100, legacyVarHsMask: 4095, passiveVarHsSeed: 9, passiveVarHsSampleMask: 7}
	left, n, err := markers(t, all)
	if err != nil || n < len(immVars)-1 || len(left) != 0 {
		t.Errorf("patch: %d loads rewritten, %v left, err %v; want >= %d, none, nil", n, left, err, len(immVars)-1)
	}
	partial := map[string]uint64{passiveVarEpMask: 1023}
	if _, _, err := markers(t, partial); err == nil {
		t.Errorf("patch without the seeds: no error")
	}
}
