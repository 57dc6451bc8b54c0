package main

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// unitPath is the systemd unit shipped for lvsprobe.
const unitPath = "../../dist/systemd/lvsprobe.service"

// unitValues returns every value of key in the unit (all sections),
// words split at blanks.
func unitValues(t *testing.T, text, key string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && k == key {
			out = append(out, strings.Fields(v)...)
		}
	}
	return out
}

// unitWithBinaries returns the unit text with its programs replaced by
// ones that exist here: lvsprobe by bin, a missing modprobe by true.
func unitWithBinaries(t *testing.T, bin string) string {
	t.Helper()
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "/usr/local/sbin/lvsprobe", bin)
	if _, err := os.Stat("/sbin/modprobe"); err != nil {
		text = strings.ReplaceAll(text, "/sbin/modprobe", "/bin/true")
	}
	return text
}

// copyTestBinary copies this test binary where every user can run it.
func copyTestBinary(t *testing.T, dir string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "lvsprobe")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestSystemdUnitVerify: systemd's own checker accepts the unit (and,
// so the check is known to bite, rejects a broken copy).
func TestSystemdUnitVerify(t *testing.T) {
	sa := testenv.RequireProgram(t, "systemd-analyze")
	dir := t.TempDir()
	bin := copyTestBinary(t, dir)
	verify := func(text string) (string, error) {
		p := filepath.Join(dir, "lvsprobe.service")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "verify", "--man=no", p).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	good := unitWithBinaries(t, bin)
	if out, err := verify(good); err != nil || out != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	bad := strings.Replace(good, "Type=notify\n", "Type=notify\nWatchdogSecs=5\n", 1)
	if out, err := verify(bad); err == nil && !strings.Contains(out, "WatchdogSecs") {
		t.Fatalf("a misspelt directive passed verify: %v %q", err, out)
	}
}

// TestSystemdUnitSandbox runs `lvsprobe run` the way the unit runs it —
// an unprivileged user holding only the unit's ambient capabilities, no
// new privileges — under strace, against a real server in a namespace,
// with a notify script, a reload and a stop. Every feature must come up
// (eBPF receiver, raw SYN probes, reserved ports, control socket, the
// script), and every system call and socket family the daemon and its
// script used must be allowed by the unit's SystemCallFilter= and
// RestrictAddressFamilies=, so systemd's sandbox cannot break what this
// run exercised.
func TestSystemdUnitSandbox(t *testing.T) {
	testenv.RequireRoot(t)
	sa := testenv.RequireProgram(t, "systemd-analyze")
	setpriv := testenv.RequireProgram(t, "setpriv")
	strace := testenv.RequireProgram(t, "strace")
	b, err := os.ReadFile(unitPath)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	ambient := unitValues(t, unit, "AmbientCapabilities")
	if bound := unitValues(t, unit, "CapabilityBoundingSet"); !slices.Equal(ambient, bound) {
		t.Fatalf("AmbientCapabilities %v differ from CapabilityBoundingSet %v", ambient, bound)
	}
	var caps []string
	for _, c := range ambient {
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	capList := "-all," + strings.Join(caps, ",")

	n := testnet.New(t, testnet.Options{})
	rs := n.RealServers[0]
	l := rs.Listen(t, "tcp", netip.AddrPortFrom(rs.Addr, 8080).String())
	go acceptAndReset(l)

	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := copyTestBinary(t, dir)
	run := filepath.Join(dir, "run") // RuntimeDirectory=: owned by the unit's user
	if err := os.Mkdir(run, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(run, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "events")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(fifo, 0o666)
	ff, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ff.Close()
	script := filepath.Join(dir, "notify")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1 $(id -u)\" >"+fifo+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`virtual_server 198.18.250.1 80 {
    delay_loop 0.2
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server %s 8080 {
        notify_down "%s down"
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
}
`, rs.Addr, script)), 0o644); err != nil {
		t.Fatal(err)
	}

	trace := filepath.Join(dir, "strace.out")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, strace, "-f", "-qq", "-o", trace,
		setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--no-new-privs",
		"--inh-caps="+capList, "--ambient-caps="+capList, "--bounding-set="+capList,
		bin, "run", "-f", conf, "--ipvs=dry-run", "--control-socket="+filepath.Join(run, "lvsprobe.sock"), "--metrics-listen=127.0.0.1:9118")
	cmd.Env = append(os.Environ(), envAsMain+"=1")
	cmd.WaitDelay = 5 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs <- sc.Text()
		}
		close(logs)
	}()
	var seen []string
	waitLog := func(parts ...string) {
		t.Helper()
		deadline := time.After(60 * time.Second)
		for {
			select {
			case line, ok := <-logs:
				if !ok {
					t.Fatalf("lvsprobe ended before a log line with %q:\n%s", parts, strings.Join(seen, "\n"))
				}
				seen = append(seen, line)
				match := true
				for _, p := range parts {
					match = match && strings.Contains(line, p)
				}
				if match {
					return
				}
			case <-deadline:
				t.Fatalf("no log line with %q within a minute:\n%s", parts, strings.Join(seen, "\n"))
			}
		}
	}
	waitLog("SYN probes on", "receiver=ebpf")
	waitLog("control socket ready")
	waitLog("real server up", rs.Addr.String())
	if b, err := exec.Command("cat", "/proc/sys/net/ipv4/ip_local_reserved_ports").Output(); err != nil || !strings.Contains(string(b), "61000-61999") {
		t.Errorf("reserved ports %q (%v), want the SYN probe range", b, err)
	}
	_ = l.Close()
	waitLog("real server down", rs.Addr.String())
	if err := ff.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	ev, err := bufio.NewReader(ff).ReadString('\n')
	if err != nil || strings.TrimSpace(ev) != "down 65534" {
		t.Fatalf("notify_down: %q (%v), want \"down 65534\" (run as nobody)", ev, err)
	}
	waitLog("script ran", "notify_down")
	// strace blocks fatal signals (it runs with -o): signal lvsprobe, its
	// child (setpriv exec'd into lvsprobe).
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
	if err != nil || len(strings.Fields(string(b))) != 1 {
		t.Fatalf("children of strace: %q (%v)", b, err)
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(pid, syscall.SIGHUP)
	waitLog("configuration reloaded")
	_ = syscall.Kill(pid, syscall.SIGTERM)
	waitLog("lvsprobe stopped")
	for line := range logs {
		seen = append(seen, line)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lvsprobe under the unit's sandbox: %v\n%s", err, strings.Join(seen, "\n"))
	}
	for _, line := range seen {
		if low := strings.ToLower(line); strings.Contains(low, "not permitted") || strings.Contains(low, "permission denied") {
			t.Errorf("refused under the unit's privileges: %s", line)
		}
	}

	used, families := traced(t, trace)
	allowed := map[string]bool{}
	for _, f := range unitValues(t, unit, "SystemCallFilter") {
		if !strings.HasPrefix(f, "@") {
			allowed[f] = true
			continue
		}
		for _, s := range syscallGroup(t, sa, f, map[string]bool{}) {
			allowed[s] = true
		}
	}
	for _, s := range used {
		if !allowed[s] {
			t.Errorf("system call %s is used but not in SystemCallFilter=%v", s, unitValues(t, unit, "SystemCallFilter"))
		}
	}
	okFamilies := unitValues(t, unit, "RestrictAddressFamilies")
	for _, f := range families {
		if !slices.Contains(okFamilies, f) {
			t.Errorf("socket family %s is used but not in RestrictAddressFamilies=%v", f, okFamilies)
		}
	}
	t.Logf("system calls %v, socket families %v", used, families)
}

// traced returns the distinct system calls and socket families in an
// strace -f output.
func traced(t *testing.T, path string) (calls, families []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	callRE := regexp.MustCompile(`^\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]`)
	famRE := regexp.MustCompile(`\bsocket\((AF_[A-Z0-9]+)`)
	cs, fs := map[string]bool{}, map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := callRE.FindStringSubmatch(line); m != nil && !strings.Contains(line, "+++") && !strings.Contains(line, "---") {
			cs[m[1]] = true
		}
		if m := famRE.FindStringSubmatch(line); m != nil {
			fs[m[1]] = true
		}
	}
	for c := range cs {
		calls = append(calls, c)
	}
	for f := range fs {
		families = append(families, f)
	}
	slices.Sort(calls)
	slices.Sort(families)
	if len(calls) < 20 {
		t.Fatalf("strace saw only %v", calls)
	}
	return calls, families
}

// syscallGroup expands a systemd system call group with systemd-analyze.
func syscallGroup(t *testing.T, sa, group string, seen map[string]bool) []string {
	t.Helper()
	if seen[group] {
		return nil
	}
	seen[group] = true
	out, err := exec.Command(sa, "syscall-filter", group).Output()
	if err != nil {
		t.Fatalf("systemd-analyze syscall-filter %s: %v", group, err)
	}
	var calls []string
	for i, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case i == 0 || line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "@"):
			calls = append(calls, syscallGroup(t, sa, line, seen)...)
		default:
			calls = append(calls, line)
		}
	}
	return calls
}
