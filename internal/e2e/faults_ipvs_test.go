package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// refusedSched is the scheduler whose module the kernel cannot load in
// TestFaultSchedulerRefused; no other test of the package uses it.
const refusedSched = "nq"

// moduleLoaded reports whether /proc/modules lists name.
func moduleLoaded(t *testing.T, name string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/modules")
	if err != nil {
		t.Fatalf("read /proc/modules: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

// refuseModule makes the kernel's module loader fail for module, as when
// it is blacklisted or missing from the disk: /proc/sys/kernel/modprobe
// (the program the kernel runs for request_module) is replaced by a
// script that fails for module and runs the real modprobe for any other.
// The module is unloaded first if loaded and unused. The returned func
// restores the loader (also done on cleanup).
func refuseModule(t *testing.T, module string) (restore func()) {
	t.Helper()
	const knob = "/proc/sys/kernel/modprobe"
	orig, err := os.ReadFile(knob)
	if err != nil {
		t.Fatalf("read %s: %v", knob, err)
	}
	real := strings.TrimSpace(string(orig))
	if moduleLoaded(t, module) {
		if out, err := runCmd("rmmod", module); err != nil {
			testenv.SkipOrFail(t, fmt.Sprintf("%s is loaded and cannot be removed: %v: %s", module, err, out))
		}
	}
	script := filepath.Join(t.TempDir(), "modprobe")
	body := "#!/bin/sh\n# refuses " + module + " like a blacklisted or absent module\n" +
		"for a in \"$@\"; do [ \"$a\" = " + module + " ] && exit 1; done\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	// The kernel runs the helper from the initial namespaces: the path
	// must be reachable there too (the guest's /tmp is shared).
	if err := os.WriteFile(knob, []byte(script), 0o644); err != nil {
		t.Fatalf("set %s: %v", knob, err)
	}
	done := false
	restore = func() {
		if !done {
			done = true
			if err := os.WriteFile(knob, []byte(real), 0o644); err != nil {
				t.Errorf("restore %s: %v", knob, err)
			}
		}
	}
	t.Cleanup(restore)
	return restore
}

// runCmd runs a program in the director and returns its combined output.
func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// TestFaultSchedulerRefused runs lvsprobe on a configuration whose first
// service needs a scheduler module (ip_vs_nq) the kernel cannot load,
// beside an ordinary service. The kernel refuses the service (ENOENT);
// lvsprobe must log the error with the service, keep retrying, run the
// other service normally (a real server failing and coming back there),
// and add the refused service once the module can load — all without
// touching the foreign service.
func TestFaultSchedulerRefused(t *testing.T) {
	l := newLab(t, 2)
	l.addForeign()
	restore := refuseModule(t, "ip_vs_"+refusedSched)
	p := l.startRun(l.writeConfig("faults-refuse.conf"), nil, "--syn-probe=false")
	other := []string{"TCP 198.19.0.2:80 rr", "  -> RS0:80 Masq 1 0 0", "  -> RS1:80 Masq 1 0 0"}
	l.waitTable("the other service in, the refused one out", with(other...), p.proc)
	const failed = `msg="ipvs write failed; will retry"`
	l.waitFor("the refusal retried", func(table) bool {
		return countLines(p.log(), failed, "198.19.0.1:80") >= 3
	}, p.proc)
	if n := countLines(p.log(), failed, "198.19.0.2:80"); n != 0 {
		t.Fatalf("the other service's writes failed %d times\n%s", n, p.log())
	}
	m := l.metricsOf(p)
	if m["lvsprobe_ipvs_errors_total"] < 3 || m["lvsprobe_ipvs_backoff_targets"] < 1 {
		t.Errorf("errors_total %v, backoff_targets %v; want at least 3 and 1",
			m["lvsprobe_ipvs_errors_total"], m["lvsprobe_ipvs_backoff_targets"])
	}

	// The other service lives on: a real server fails and comes back.
	l.nginx[1].Stop(t)
	l.waitTable("RS1 out of the other service", with("TCP 198.19.0.2:80 rr", "  -> RS0:80 Masq 1 0 0"), p.proc)
	l.nginx[1].Start(t)
	l.waitTable("RS1 back", with(other...), p.proc)

	restore()
	lifted := time.Now()
	l.requireForeign(l.waitTable("the refused service in once its module loads", with(append(other,
		"TCP 198.19.0.1:80 "+refusedSched, "  -> RS0:80 Masq 1 0 0", "  -> RS1:80 Masq 1 0 0")...), p.proc))
	t.Logf("service added %v after the module could load; %d refusals logged",
		time.Since(lifted).Round(time.Millisecond), countLines(p.log(), failed, "198.19.0.1:80"))
	if !moduleLoaded(t, "ip_vs_"+refusedSched) {
		t.Errorf("ip_vs_%s is not loaded after the service was added", refusedSched)
	}
}

// countLines counts the lines of log holding every one of subs.
func countLines(log string, subs ...string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// TestFaultDriftByIpvsadm changes the owned services behind lvsprobe's
// back with ipvsadm — a destination deleted, one re-weighted, the
// scheduler changed, a destination the configuration does not have
// added, a whole service deleted — and adds a second foreign service.
// lvsprobe must restore its services exactly, never take out the
// destination nobody touched, and leave both foreign services as they
// are.
func TestFaultDriftByIpvsadm(t *testing.T) {
	l := newLab(t, 2)
	l.addForeign()
	p := l.startRun(l.writeConfig("lifecycle.conf"), nil, "--syn-probe=false")
	up := withGolden(t, "lifecycle.up")
	l.waitTable("all real servers in", up, p.proc)
	w := watchDests(t, []config.ServiceKey{tcpService("198.19.0.1", 80)}, 20*time.Millisecond, 2*convergeTimeout)
	untouched := fmt.Sprintf("198.19.0.1:80 -> %s:80", l.rs[0].Addr)

	rs0, rs1 := l.rs[0].Addr.String(), l.rs[1].Addr.String()
	l.ipvsadmRun("-A", "-t", "198.19.9.10:80", "-s", "wlc")
	l.ipvsadmRun("-a", "-t", "198.19.9.10:80", "-r", rs1+":80", "-m", "-w", "4")
	l.ipvsadmRun("-d", "-t", "198.19.0.1:80", "-r", rs1+":80")
	l.ipvsadmRun("-a", "-t", "198.19.0.1:80", "-r", rs0+":8080", "-m", "-w", "5")
	l.ipvsadmRun("-E", "-t", "198.19.0.1:80", "-s", "wrr")
	l.ipvsadmRun("-e", "-t", "198.19.0.2:80", "-r", rs0+":80", "-m", "-w", "9")
	drifted := time.Now()
	if tb := l.table(); tb.String() == up.String() {
		t.Fatalf("drift was not made:\n%s", tb)
	}
	foreign2 := []string{"TCP 198.19.9.10:80 wlc", "  -> RS1:80 Masq 4 0 0"}
	repaired := l.waitTable("drift repaired", with(append(readGolden(t, "lifecycle.up"), foreign2...)...), p.proc)
	t.Logf("drift repaired %v after it was made", time.Since(drifted).Round(time.Millisecond))
	l.requireForeign(repaired)

	// A whole owned service deleted.
	l.ipvsadmRun("-D", "-t", "198.19.0.2:80")
	l.requireForeign(l.waitTable("deleted service restored", repaired, p.proc))
	w.stop(t)
	if outs, _ := w.counts(untouched); outs != 0 {
		t.Errorf("%s, touched by nobody, left the table %d times", untouched, outs)
	}
	if got := l.table().service("TCP 198.19.9.10:80"); got.String() != table(foreign2).String() {
		t.Errorf("the second foreign service changed: %s", got)
	}
}
