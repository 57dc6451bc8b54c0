package notify

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// envHelper makes TestUnprivilegedHelper act: the test binary re-run as
// an unprivileged daemon would run under systemd.
const envHelper = "LVSPROBE_NOTIFY_HELPER"

// TestUnprivileged runs a Runner the way lvsprobe runs under its systemd
// unit (User=, AmbientCapabilities=): as nobody holding an ambient
// capability. The script it starts must hold no capability at all, and a
// script that must run as another user is refused at load with a reason.
func TestUnprivileged(t *testing.T) {
	l := newLab(t)
	setpriv := testenv.RequireProgram(t, "setpriv")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(l.dir, "notify.test")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	caps := l.script("caps", `grep -E '^Cap(Amb|Eff|Prm|Inh)' /proc/self/status | tr '\n\t' '  ' >@FIFO@; echo >@FIFO@`, 0o755)
	cmd := exec.Command(setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw",
		bin, "-test.run=^TestUnprivilegedHelper$", "-test.v")
	cmd.Env = append(os.Environ(), envHelper+"=1", "LVSPROBE_NOTIFY_SCRIPT="+caps)
	cmd.Dir = l.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "helper done") {
		t.Fatalf("helper did not finish:\n%s", out)
	}
	got := l.line()
	for _, f := range []string{"CapInh:", "CapPrm:", "CapEff:", "CapAmb:"} {
		i := strings.Index(got, f)
		if i < 0 {
			t.Fatalf("no %s in %q", f, got)
		}
		if v := strings.Fields(got[i+len(f):])[0]; v != "0000000000000000" {
			t.Errorf("script holds capabilities: %s %s (all: %q)", f, v, got)
		}
	}
}

// TestUnprivilegedHelper is the re-run half of TestUnprivileged.
func TestUnprivilegedHelper(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("helper of TestUnprivileged")
	}
	status, _ := os.ReadFile("/proc/self/status")
	if !strings.Contains(string(status), "CapAmb:\t0000000000002000") {
		t.Fatalf("precondition: the helper holds CAP_NET_RAW as an ambient capability:\n%s", status)
	}
	s := os.Getenv("LVSPROBE_NOTIFY_SCRIPT")
	r := New(Options{})
	// Another user: refused, with the reason.
	err := r.Update(parse(t, conf("script_user root", "", "  notify_down "+s)))
	if !errors.Is(err, ErrNoUser) || !strings.Contains(err.Error(), "CAP_SETUID") {
		t.Fatalf("script as root from an unprivileged daemon: %v, want ErrNoUser naming CAP_SETUID", err)
	}
	// Its own user (the default without keepalived_script): runs.
	if err := r.Update(parse(t, conf("", "", "  notify_down "+s))); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	r.RealServer(rsKey, false)
	waitStats(t, r, func(st Stats) bool { return st.Succeeded+st.Failed > 0 })
	if st := r.Stats(); st.Succeeded != 1 {
		t.Fatalf("stats %+v", st)
	}
	fmt.Println("helper done")
}
