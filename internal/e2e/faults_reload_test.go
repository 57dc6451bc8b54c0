package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/ipvs"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// The reload storm: how many SIGHUPs, over how long, and how many real
// servers — 10,000 on the host (--ipvs=dry-run, every write counted from
// its printed ipvsadm command), fewer in the emulated guest (real IPVS,
// writes counted by lvsprobe_ipvs_operations_total and watched over
// netlink), where 10,000 checks alone take the vCPU.
const (
	stormReloads   = 100
	stormOver      = 10 * time.Second
	stormHostRS    = 10000
	stormGuestRS   = 500
	stormBasePort  = 20000
	stormRSSGrowth = 1.25 // RSS after the storm over RSS after its first tenth, at most
)

// stormConfig writes a configuration of n TCP_CHECK real servers on
// addr's ports stormBasePort.. to path, with real server 0 at weight w0.
func stormConfig(t *testing.T, path string, addr string, n, w0 int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("global_defs {\n    router_id lvsprobe_e2e\n}\nvirtual_server 198.19.0.1 80 {\n" +
		"    delay_loop 30\n    lvs_sched wrr\n    lvs_method NAT\n    protocol TCP\n")
	for i := range n {
		w := 1
		if i == 0 {
			w = w0
		}
		fmt.Fprintf(&b, "    real_server %s %d {\n        weight %d\n        TCP_CHECK {\n            connect_timeout 5\n            retry 1\n        }\n    }\n",
			addr, stormBasePort+i, w)
	}
	b.WriteString("}\n")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// pointConfig makes path a symbolic link to target, atomically.
func pointConfig(t *testing.T, path, target string) {
	t.Helper()
	tmp := path + ".link"
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// listenPorts opens n listeners on rs at addr's ports base.., accepting
// and closing every connection; they close on cleanup.
func listenPorts(t *testing.T, rs *testnet.RealServer, base, n int) {
	t.Helper()
	var lns []net.Listener
	err := rs.Do(func() error {
		for i := range n {
			ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", rs.Addr, base+i))
			if err != nil {
				return err
			}
			lns = append(lns, ln)
		}
		return nil
	})
	var wg sync.WaitGroup
	t.Cleanup(func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
		wg.Wait()
	})
	if err != nil {
		t.Fatalf("listen on %d ports: %v", n, err)
	}
	for _, ln := range lns {
		wg.Go(func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						t.Errorf("accept: %v", err)
					}
					return
				}
				_ = c.Close()
			}
		})
	}
}

// lvsprobeBin returns LVSPROBE_BIN, or builds lvsprobe into a test
// directory when it is unset (host runs of the package).
func lvsprobeBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("LVSPROBE_BIN"); bin != "" {
		return bin
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		testenv.SkipOrFail(t, "LVSPROBE_BIN is unset and no go to build lvsprobe with")
	}
	bin := filepath.Join(t.TempDir(), "lvsprobe")
	cmd := exec.Command(gobin, "build", "-o", bin, "github.com/lvsprobe/lvsprobe/cmd/lvsprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build lvsprobe: %v\n%s", err, out)
	}
	return bin
}

// TestFaultReloadStorm sends 100 SIGHUPs in 10 s to lvsprobe running
// thousands of real servers, rewriting the file before each with real
// server 0's weight flipped between 1 and 2 and nothing else changed.
// The only IPVS writes allowed are edits of real server 0 (at most one
// per reload); every other destination stays untouched; the last file's
// weight is what the table ends with; RSS after the storm is within
// stormRSSGrowth of RSS after its first tenth.
func TestFaultReloadStorm(t *testing.T) {
	testenv.RequireRoot(t)
	n, backend := stormHostRS, "dry-run"
	if k, err := ipvs.NewKernel(nil); err == nil {
		_ = k.Close()
		n, backend = stormGuestRS, "kernel"
	} else if !errors.Is(err, ipvs.ErrNoIPVS) {
		t.Fatalf("open IPVS: %v", err)
	} else if os.Getenv("LVSPROBE_REQUIRE_IPVS") == "1" {
		t.Fatalf("LVSPROBE_REQUIRE_IPVS=1 but the kernel has no IPVS: %v", err)
	}
	testenv.RequireLong(t)
	l := &lab{t: t, lvsprobe: lvsprobeBin(t)}
	if backend == "kernel" {
		l.ipvsadm = testenv.RequireProgram(t, "ipvsadm")
		l.ipvsadmRun("-C")
		t.Cleanup(func() { l.ipvsadmRun("-C") })
	}
	rs := testnet.New(t, testnet.Options{RealServers: 1}).RealServers[0]
	listenPorts(t, rs, stormBasePort, n)
	conf := filepath.Join(t.TempDir(), "storm.conf")
	stormConfig(t, conf, rs.Addr.String(), n, 1)
	sock := filepath.Join(t.TempDir(), "lvsprobe.sock")
	p := &runProc{metrics: freeLocalAddr(t)}
	p.proc = l.start(l.lvsprobe, "run", "-f", conf, "--ipvs="+backend, "--metrics-listen="+p.metrics,
		"--control-socket="+sock, "--syn-probe=false", "--passive=off")
	rs0 := fmt.Sprintf("%s:%d", rs.Addr, stormBasePort)

	deadline := time.Now().Add(4 * convergeTimeout)
	for p.count(`msg="real server up"`) < n {
		if err := p.exited(); err != nil {
			t.Fatalf("lvsprobe exited: %v\n%s", err, tail(p.log(), 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d first verdicts within %v\n%s", p.count(`msg="real server up"`), n, 4*convergeTimeout, tail(p.log(), 40))
		}
		time.Sleep(pollEvery)
	}
	if p.count(`msg="real server down"`) != 0 {
		t.Fatalf("real servers down before the storm\n%s", tail(p.log(), 40))
	}
	var w *destWatch
	if backend == "kernel" {
		w = watchDests(t, []config.ServiceKey{tcpService("198.19.0.1", 80)}, 200*time.Millisecond, 3*time.Minute)
	}
	m0 := l.metricsOf(p)
	cmds0 := len(dryRunCmds(p.log()))
	reloads0 := m0[`lvsprobe_config_reloads_total{result="success"}`]

	// The two files the storm alternates between, written once: conf is
	// a symbolic link swapped to one or the other before each SIGHUP, so
	// the storm keeps its pace however large the files.
	dir := filepath.Dir(conf)
	variants := []string{filepath.Join(dir, "storm-w1.conf"), filepath.Join(dir, "storm-w2.conf")}
	stormConfig(t, variants[0], rs.Addr.String(), n, 1)
	stormConfig(t, variants[1], rs.Addr.String(), n, 2)
	var rss10, rss100 int
	every := stormOver / stormReloads
	tick := time.NewTicker(every)
	start := time.Now()
	for i := range stormReloads {
		pointConfig(t, conf, variants[(i+1)%2]) // reload 1 reads weight 2, reload 2 weight 1, ...
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatalf("SIGHUP %d: %v", i+1, err)
		}
		if i+1 == stormReloads/10 {
			rss10 = l.rss(p)
		}
		<-tick.C // the storm's own pace
	}
	tick.Stop()
	sent := time.Since(start)
	// The last file has weight 1 (100 is even); one more reload with
	// weight 2, through the control socket (it answers once the reload is
	// done), shows the storm left lvsprobe applying what it is given.
	pointConfig(t, conf, variants[1])
	l.reloadNow(p, sock)
	l.waitWeight0(p, backend, rs0, "2")
	rss100 = l.rss(p)
	m1 := l.metricsOf(p)
	applied := m1[`lvsprobe_config_reloads_total{result="success"}`] - reloads0
	failed := m1[`lvsprobe_config_reloads_total{result="failure"}`] - m0[`lvsprobe_config_reloads_total{result="failure"}`]

	// Every write since the storm began.
	ops := map[string]float64{}
	for k, v := range ipvsOps(m1) {
		ops[k] = v - ipvsOps(m0)[k]
	}
	var edits int
	var weight string
	for _, c := range dryRunCmds(p.log())[cmds0:] {
		if !strings.HasPrefix(c, "ipvsadm -e ") || !strings.Contains(c, " -r "+rs0+" ") {
			t.Errorf("write to an unchanged entry during the storm: %s", c)
			continue
		}
		edits++
		weight = c[strings.LastIndex(c, " -w ")+4:]
		weight, _, _ = strings.Cut(weight, " ")
	}
	for k, v := range ops {
		if k != "update_destination" && v != 0 {
			t.Errorf("%v %s writes during the storm, want 0", v, k)
		}
	}
	if ops["update_destination"] > applied || ops["update_destination"] == 0 {
		t.Errorf("%v edits for %v reloads applied, want between 1 and one per reload", ops["update_destination"], applied)
	}
	if backend == "dry-run" && (float64(edits) != ops["update_destination"] || weight != "2") {
		t.Errorf("%d edits printed (last weight %q) for %v counted; want equal, and weight 2", edits, weight, ops["update_destination"])
	}
	if w != nil {
		w.stop(t)
		for i := range n {
			key := fmt.Sprintf("198.19.0.1:80 -> %s:%d", rs.Addr, stormBasePort+i)
			if outs, ins := w.counts(key); outs+ins != 0 {
				t.Errorf("%s left or joined the table during the storm (%d, %d)", key, outs, ins)
			}
		}
		tb := l.table()
		if want := fmt.Sprintf("  -> %s:%d Masq 2 ", rs.Addr, stormBasePort); !strings.Contains(tb.String(), want) {
			t.Errorf("real server 0 not at weight 2 after the last reload")
		}
	}
	t.Logf("%s, %d real servers: %d SIGHUPs in %v, %v reloads applied (%v failed), %v IPVS writes (all edits of real server 0); RSS %d KiB after %d reloads, %d KiB after all",
		backend, n, stormReloads, sent.Round(time.Millisecond), applied, failed, ops["update_destination"], rss10, stormReloads/10, rss100)
	if failed != 0 {
		t.Errorf("%v reloads failed\n%s", failed, tail(p.log(), 40))
	}
	if float64(rss100) > stormRSSGrowth*float64(rss10) {
		t.Errorf("RSS grew from %d KiB to %d KiB over the storm, more than ×%v", rss10, rss100, stormRSSGrowth)
	}
	l.stop(p.proc)
}

// dryRunCmds returns the ipvsadm commands a dry run printed, in order.
func dryRunCmds(log string) []string {
	var cmds []string
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(line, "ipvsadm ") {
			cmds = append(cmds, line)
		}
	}
	return cmds
}

// rss returns p's resident set size in KiB.
func (l *lab) rss(p *runProc) int {
	l.t.Helper()
	kib, err := procRSS(p.cmd.Process.Pid)
	if err != nil {
		l.t.Fatal(err)
	}
	return kib
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// reloadNow runs `lvsprobe reload` on sock until a reload is done
// (refused while another runs: bounded retries) and fails the test if it
// is rejected.
func (l *lab) reloadNow(p *runProc, sock string) {
	l.t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		out, err := exec.Command(l.lvsprobe, "reload", "--socket", sock).CombinedOutput()
		if err == nil {
			return
		}
		if !strings.Contains(string(out), "in progress") || time.Now().After(deadline) {
			l.t.Fatalf("lvsprobe reload: %v\n%s\n%s", err, out, tail(p.log(), 40))
		}
		time.Sleep(pollEvery)
	}
}

// waitWeight0 waits until the destination rs0 has weight w: in the
// printed commands of a dry run (its last edit), or in the kernel's table.
func (l *lab) waitWeight0(p *runProc, backend, rs0, w string) {
	l.t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		got := "1"
		if backend == "dry-run" {
			for _, c := range dryRunCmds(p.log()) {
				if strings.HasPrefix(c, "ipvsadm -e ") && strings.Contains(c, " -r "+rs0+" ") {
					got = c[strings.LastIndex(c, " -w ")+4:]
					got, _, _ = strings.Cut(got, " ")
				}
			}
		} else if line := l.table().service("TCP 198.19.0.1:80"); line != nil {
			for _, d := range line[1:] {
				if f := strings.Fields(d); len(f) >= 4 && f[1] == rs0 {
					got = f[3]
				}
			}
		}
		if got == w {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s has weight %s, want %s within %v\n%s", rs0, got, w, convergeTimeout, tail(p.log(), 40))
		}
		time.Sleep(pollEvery)
	}
}
