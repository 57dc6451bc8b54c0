package loader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// TestPassiveJITImage loads the TC programs as the daemon does and reports
// their size after the verifier (BPF instructions) and after the JIT
// (bytes of machine code): the instruction-cache footprint a packet pays
// when the programs run cold (docs/benchmarks.md §16.2). With
// LVSPROBE_JIT_DUMP=DIR it writes each program's machine code to
// DIR/NAME.bin, for `objdump -D -b binary -mi386:x86-64`. With
// LVSPROBE_BENCH_PASSIVE_OBJS=name=/path.o,... it reports those objects too.
func TestPassiveJITImage(t *testing.T) {
	objs := map[string]string{"on": ""}
	for _, spec := range strings.Split(os.Getenv("LVSPROBE_BENCH_PASSIVE_OBJS"), ",") {
		if name, path, ok := strings.Cut(spec, "="); ok {
			objs[name] = path
		}
	}
	for name, path := range objs {
		if path != "" {
			passiveSpec = func() (*ebpf.CollectionSpec, error) { return ebpf.LoadCollectionSpec(path) }
		}
		p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true})
		passiveSpec = loadPassive
		eg, in := p.Programs()
		for hook, prog := range map[string]*ebpf.Program{"egress": eg, "ingress": in} {
			info, err := prog.Info()
			if err != nil {
				t.Fatalf("%s %s: info: %v", name, hook, err)
			}
			jited, err := info.JitedSize()
			if err != nil {
				t.Fatalf("%s %s: jited size: %v", name, hook, err)
			}
			xlated, err := info.TranslatedSize()
			if err != nil {
				t.Fatalf("%s %s: translated size: %v", name, hook, err)
			}
			if jited == 0 || xlated == 0 {
				t.Fatalf("%s %s: empty image (jited %d, translated %d bytes)", name, hook, jited, xlated)
			}
			t.Logf("%s %s: %d BPF instructions after the verifier, %d bytes JITed (%d cache lines)",
				name, hook, xlated/8, jited, (jited+63)/64)
			if dir := os.Getenv("LVSPROBE_JIT_DUMP"); dir != "" {
				code, ok := info.JitedInsns()
				if !ok {
					t.Fatalf("%s %s: no JITed instructions", name, hook)
				}
				if err := os.WriteFile(filepath.Join(dir, name+"-"+hook+".bin"), code, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		p.Close()
	}
}
