package loader

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The markers of bpf/headers/passive.h's PASSIVE_IMM_*: 64-bit immediate
// loads in bpf/passive.c that stand for a variable's value.
const (
	immEpMask  = 0x4c5650494d4d0001
	immEpSeed  = 0x4c5650494d4d0002
	immRsSlots = 0x4c5650494d4d0003
	immHsMask  = 0x4c5650494d4d0004
	immHsSeed  = 0x4c5650494d4d0005
	immHsSamp  = 0x4c5650494d4d0006
)

// immVars maps each marker to the variable whose value replaces it.
var immVars = map[uint64]string{
	immEpMask:  passiveVarEpMask,
	immEpSeed:  passiveVarEpSeed,
	immRsSlots: passiveVarRsSlots,
	immHsMask:  legacyVarHsMask, // older objects only
	immHsSeed:  passiveVarHsSeed,
	immHsSamp:  passiveVarHsSampleMask,
}

// patchImmediates writes the values in vals (by variable name) into every
// 64-bit immediate load of a marker in spec's programs, so that the hot
// paths read the hash seeds and table sizes from their instructions
// instead of a .rodata cache line (docs/benchmarks.md §16.2). It returns
// how many loads it rewrote: 0 for an object without markers (an older
// one), which reads the variables as before. A marker without a value is
// an error: the program would run with the marker as its seed or mask.
func patchImmediates(spec *ebpf.CollectionSpec, vals map[string]uint64) (int, error) {
	n := 0
	for name, prog := range spec.Programs {
		for i := range prog.Instructions {
			ins := &prog.Instructions[i]
			if !ins.IsConstantLoad(asm.DWord) {
				continue
			}
			v, ok := immVars[uint64(ins.Constant)]
			if !ok {
				continue
			}
			val, ok := vals[v]
			if !ok {
				return n, fmt.Errorf("program %s: immediate for %s: no value", name, v)
			}
			ins.Constant = int64(val)
			n++
		}
	}
	return n, nil
}
