package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// unitCaps returns the capabilities dist/systemd/lvsprobe.service grants
// (AmbientCapabilities=) as a setpriv list: -all,+net_admin,...
func unitCaps(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../dist/systemd/lvsprobe.service")
	if err != nil {
		t.Fatal(err)
	}
	list := "-all"
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "AmbientCapabilities="); ok {
			for _, c := range strings.Fields(v) {
				list += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
			}
		}
	}
	if list == "-all" {
		t.Fatal("the unit grants no AmbientCapabilities")
	}
	return list
}

// TestUnitPrivilegesOnRealIPVS runs lvsprobe on the kernel's IPVS the way
// its systemd unit runs it — as an unprivileged user (nobody) holding only
// the unit's ambient capabilities, no new privileges — with SYN probes on,
// and follows a real server out of the table and back: the unit's
// privileges are enough for IPVS over netlink, the eBPF receiver and the
// raw probes on Debian's kernel.
func TestUnitPrivilegesOnRealIPVS(t *testing.T) {
	l := newLab(t, 2)
	setpriv := testenv.RequireProgram(t, "setpriv")
	caps := unitCaps(t)
	// The binary must be reachable by nobody.
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(l.lvsprobe)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "lvsprobe")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "lifecycle.conf")
	l.renderConfig("lifecycle.conf", conf)
	if err := os.Chmod(conf, 0o644); err != nil {
		t.Fatal(err)
	}

	lp := l.start(setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--no-new-privs",
		"--inh-caps="+caps, "--ambient-caps="+caps, "--bounding-set="+caps,
		bin, "run", "-f", conf, "--ipvs=kernel", "--metrics-listen=", "--control-socket=")
	up := readGolden(t, "lifecycle.up")
	l.waitTable("all real servers in", up, lp)
	l.nginx[0].Stop(t)
	l.waitTable("real server 0 out", readGolden(t, "lifecycle.down"), lp)
	l.nginx[0].Start(t)
	l.waitTable("real server 0 back", up, lp)
	l.stop(lp)
	if lp.err != nil {
		t.Fatalf("lvsprobe under the unit's privileges: %v\n%s", lp.err, lp.log())
	}
	for _, bad := range []string{"not permitted", "permission denied", "SYN probes unavailable"} {
		if n := lp.count(bad); n > 0 {
			t.Errorf("%q in the log %d times:\n%s", bad, n, lp.log())
		}
	}
	if lp.count("receiver=ebpf") == 0 {
		t.Errorf("the eBPF receiver did not come up:\n%s", lp.log())
	}
}
