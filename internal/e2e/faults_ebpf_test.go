package e2e

import (
	"strings"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// noBPF is the setpriv capability list that takes away what loading an
// eBPF program needs (CAP_BPF, and CAP_SYS_ADMIN which stands in for it;
// CAP_PERFMON for tracepoints): with unprivileged eBPF disabled, as on
// Debian, every program load then fails with EPERM.
const noBPF = "-bpf,-sys_admin,-perfmon"

// TestFaultNoEBPF runs lvsprobe, with its defaults (SYN probes, passive
// observer, detector), as root but without the capabilities eBPF needs,
// so that no program loads. It must say so once per part (the SYN
// receiver falls back to a packet socket, the passive observer is off),
// export it (lvsprobe_passive_available 0,
// lvsprobe_synprobe_receiver{kind="packet"} 1), and keep the table right
// on its checks: a real server that stops leaves it and comes back.
func TestFaultNoEBPF(t *testing.T) {
	l := newLab(t, 2)
	l.addForeign()
	setpriv := testenv.RequireProgram(t, "setpriv")
	p := l.startRun(l.writeConfig("lifecycle.conf"),
		[]string{setpriv, "--bounding-set=" + noBPF, "--inh-caps=" + noBPF})
	up := withGolden(t, "lifecycle.up")
	l.waitTable("all real servers in", up, p.proc)
	l.waitFor("first verdicts", func(table) bool { return p.count(`msg="real server up"`) >= 4 }, p.proc)

	m := l.metricsOf(p)
	if v, ok := m["lvsprobe_passive_available"]; !ok || v != 0 {
		t.Errorf("lvsprobe_passive_available = %v (present %t), want 0", v, ok)
	}
	if v := m[`lvsprobe_synprobe_receiver{kind="packet"}`]; v != 1 {
		t.Errorf(`lvsprobe_synprobe_receiver{kind="packet"} = %v, want 1`, v)
	}
	if v := m[`lvsprobe_synprobe_receiver{kind="ebpf"}`]; v != 0 {
		t.Errorf(`lvsprobe_synprobe_receiver{kind="ebpf"} = %v, want 0`, v)
	}

	l.nginx[0].Stop(t)
	l.waitTable("real server 0 out", withGolden(t, "lifecycle.down"), p.proc)
	l.nginx[0].Start(t)
	l.requireForeign(l.waitTable("real server 0 back", up, p.proc))

	for _, once := range []string{
		`msg="eBPF receiver unavailable, falling back to a packet socket"`,
		`msg="passive observation unavailable; running on active checks only"`,
	} {
		if n := p.count(once); n != 1 {
			t.Errorf("%s logged %d times, want once\n%s", once, n, p.log())
		}
	}
	var warns []string
	for _, line := range strings.Split(p.log(), "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			warns = append(warns, line)
		}
	}
	if len(warns) != 2 {
		t.Errorf("%d warnings or errors, want the 2 above:\n%s", len(warns), strings.Join(warns, "\n"))
	}
	if !strings.Contains(p.log(), "operation not permitted") {
		t.Errorf("the warnings do not give the kernel's refusal:\n%s", strings.Join(warns, "\n"))
	}
}
