package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// systemdConf is the keepalived.conf of TestUnitUnderSystemd: scripts log
// through logger (the unit's sandbox leaves them no writable file).
const systemdConf = `global_defs {
    script_user lvsprobe
    enable_script_security
}
virtual_server 198.19.0.1 80 {
    delay_loop 1
    lvs_sched rr
    lvs_method NAT
    protocol TCP
    quorum_down "/usr/bin/logger -t lvtest quorum down"
    quorum_up "/usr/bin/logger -t lvtest quorum up"
    real_server RS0 80 {
        weight 1
        notify_down "/usr/bin/logger -t lvtest real server down"
        notify_up "/usr/bin/logger -t lvtest real server up"
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
}
`

// systemdNS is a systemd running as PID 1 of its own PID and mount
// namespaces in the kernel-lab guest.
type systemdNS struct {
	t   *testing.T
	pid int // systemd's PID outside the namespace
}

// run runs a command inside the namespaces (systemctl, journalctl).
func (s *systemdNS) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", fmt.Sprint(s.pid), "-m", "-p", "--"}, args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// prop returns one property of the lvsprobe unit.
func (s *systemdNS) prop(name string) string {
	s.t.Helper()
	out, err := s.run("systemctl", "show", "-p", name, "--value", "lvsprobe.service")
	if err != nil {
		s.t.Fatalf("systemctl show %s: %v: %s", name, err, out)
	}
	return out
}

// waitJournal waits until the journal of the namespace has a line with s.
func (s *systemdNS) waitJournal(what string, args ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		out, _ := s.run(append([]string{"journalctl", "--no-pager", "-o", "cat"}, args...)...)
		if strings.Contains(out, what) {
			return out
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no %q in the journal (%v) within %v:\n%s", what, args, convergeTimeout, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestUnitUnderSystemd installs lvsprobe the way docs/systemd.md says
// (binary, sysusers file, dist/systemd/lvsprobe.service) in the kernel-lab
// guest, starts it under a real systemd (Debian's, as PID 1 of a PID
// namespace) with the unit's whole sandbox, on the kernel's IPVS, and
// checks what the unit promises: active only after READY=1 with a status
// line, the user lvsprobe, the watchdog armed, the control socket in
// /run/lvsprobe, a real server out and back with its notify scripts run
// (through the journal), systemctl reload, and a clean stop.
func TestUnitUnderSystemd(t *testing.T) {
	if os.Getenv("LVSPROBE_VMLAB") != "1" {
		// It installs into /usr/local, /etc and runs an init: the guest's
		// disposable root only.
		testenv.SkipForKernelLab(t, errors.New("installs a systemd unit and runs systemd: kernel-lab guest only"))
	}
	l := newLab(t, 1)
	for _, p := range []string{"/lib/systemd/systemd", "systemctl", "journalctl", "systemd-sysusers", "nsenter", "unshare"} {
		if _, err := exec.LookPath(p); err != nil {
			testenv.SkipOrFail(t, p+" is not installed")
		}
	}
	install := func(src, dst string, mode os.FileMode) {
		t.Helper()
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, mode); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(dst) })
	}
	install(l.lvsprobe, "/usr/local/sbin/lvsprobe", 0o755)
	install("../../dist/systemd/lvsprobe.sysusers", "/etc/sysusers.d/lvsprobe.conf", 0o644)
	install("../../dist/systemd/lvsprobe.service", "/etc/systemd/system/lvsprobe.service", 0o644)
	if out, err := exec.Command("systemd-sysusers").CombinedOutput(); err != nil {
		t.Fatalf("systemd-sysusers: %v: %s", err, out)
	}
	conf := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(conf, []byte(strings.ReplaceAll(systemdConf, "RS0", l.rs[0].Addr.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	install(conf, "/etc/keepalived/keepalived.conf", 0o644)
	target := filepath.Join(t.TempDir(), "lvtest.target")
	if err := os.WriteFile(target, []byte("[Unit]\nRequires=lvsprobe.service\nAfter=lvsprobe.service\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	install(target, "/etc/systemd/system/lvtest.target", 0o644)

	// systemd gets private /tmp and /run (its tmpfiles clean /tmp at
	// boot: the tests' directories live there), then becomes PID 1.
	init := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "sh", "-c",
		"mount -t tmpfs tmpfs /tmp && mount -t tmpfs -o mode=755 tmpfs /run && "+
			"exec /lib/systemd/systemd --system --unit=lvtest.target --log-target=console --show-status=no")
	init.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := init.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-init.Process.Pid, syscall.SIGKILL) // PID 1 of the namespace: everything in it goes
		_ = init.Wait()
	})
	s := &systemdNS{t: t}
	deadline := time.Now().Add(convergeTimeout)
	for s.pid == 0 {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", init.Process.Pid, init.Process.Pid))
		if _, err := fmt.Sscan(string(b), &s.pid); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("systemd did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		st, _ := s.run("systemctl", "is-active", "lvsprobe.service")
		if st == "active" {
			break
		}
		if st == "failed" || time.Now().After(deadline.Add(convergeTimeout)) {
			out, _ := s.run("journalctl", "--no-pager", "-u", "lvsprobe.service")
			t.Fatalf("lvsprobe.service is %q:\n%s", st, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if got := s.prop("StatusText"); !strings.HasPrefix(got, "1 virtual servers") {
		t.Errorf("StatusText %q: READY=1 carries the status", got)
	}
	if got := s.prop("User"); got != "lvsprobe" {
		t.Errorf("User %q", got)
	}
	if got := s.prop("WatchdogUSec"); got != "30s" {
		t.Errorf("WatchdogUSec %q", got)
	}
	if out, err := s.run("/usr/local/sbin/lvsprobe", "status"); err != nil || !strings.Contains(out, "198.19.0.1:80") {
		t.Errorf("lvsprobe status over /run/lvsprobe/lvsprobe.sock: %v\n%s", err, out)
	}

	up := readGolden(t, "systemd.up")
	l.waitTable("the real server in", up)
	l.nginx[0].Stop(t)
	l.waitTable("the real server out", readGolden(t, "systemd.down"))
	s.waitJournal("real server down", "-t", "lvtest")
	s.waitJournal("quorum down", "-t", "lvtest")
	l.nginx[0].Start(t)
	l.waitTable("the real server back", up)
	s.waitJournal("real server up", "-t", "lvtest")

	if out, err := s.run("systemctl", "reload", "lvsprobe.service"); err != nil {
		t.Fatalf("systemctl reload: %v: %s", err, out)
	}
	s.waitJournal("configuration reloaded", "-u", "lvsprobe.service")
	if out, err := s.run("systemctl", "stop", "lvsprobe.service"); err != nil {
		t.Fatalf("systemctl stop: %v: %s", err, out)
	}
	if got := s.prop("Result"); got != "success" {
		out, _ := s.run("journalctl", "--no-pager", "-u", "lvsprobe.service")
		t.Errorf("Result %q after stop:\n%s", got, out)
	}
	if got := s.prop("NRestarts"); got != "0" {
		t.Errorf("NRestarts %q: the watchdog or a crash restarted it", got)
	}
	// Stop leaves the table (no lvs_flush_on_stop).
	l.waitTable("the table left in place", up)
}
