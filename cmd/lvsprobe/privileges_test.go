package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/caps"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// threadCaps are the capability sets of one thread, from
// /proc/PID/task/TID/status.
type threadCaps struct {
	tid                     string
	inh, prm, eff, bnd, amb caps.Set
}

// procCaps reads the capability sets of every thread of pid.
func procCaps(t *testing.T, pid int) []threadCaps {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []threadCaps
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name(), "status"))
		if err != nil {
			continue // the thread exited
		}
		tc := threadCaps{tid: e.Name()}
		fields := map[string]*caps.Set{"CapInh": &tc.inh, "CapPrm": &tc.prm, "CapEff": &tc.eff, "CapBnd": &tc.bnd, "CapAmb": &tc.amb}
		seen := 0
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if p := fields[k]; ok && p != nil {
				n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				if err != nil {
					t.Fatalf("%s/%s/status: %s: %v", dir, e.Name(), k, err)
				}
				*p = caps.Set(n)
				seen++
			}
		}
		_ = f.Close()
		if seen != len(fields) {
			t.Fatalf("%s/%s/status: %d of the %d capability lines", dir, e.Name(), seen, len(fields))
		}
		out = append(out, tc)
	}
	return out
}

// daemonCmd returns a command running lvsprobe with args that can change
// the capabilities of all its threads: LVSPROBE_BIN, this test binary when
// it was built without cgo (as `make test` builds it), or else a
// CGO_ENABLED=0 build of the command.
func daemonCmd(t *testing.T, ctx context.Context, args ...string) *exec.Cmd {
	t.Helper()
	cgo := true
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "CGO_ENABLED" {
				cgo = s.Value == "1"
			}
		}
	}
	if os.Getenv("LVSPROBE_BIN") != "" || !cgo {
		return lvsprobeCmd(t, ctx, args...)
	}
	bin := filepath.Join(t.TempDir(), "lvsprobe")
	build := exec.Command(testenv.RequireProgram(t, "go"), "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

const capsConf = `virtual_server 198.18.250.1 80 {
    delay_loop 1
    lb_kind NAT
    protocol TCP
%s}
`

const capsRS = `    real_server %s 8080 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
`

// TestCapabilitiesDropped runs `lvsprobe run` as root (every capability)
// with the SYN prober and the passive observer, and reads the sets of
// every thread of the real process once it has started: CAP_NET_ADMIN,
// CAP_NET_RAW, CAP_NET_BIND_SERVICE and CAP_BPF are left in the effective,
// permitted and bounding sets, nothing in the inheritable and ambient
// ones. Then it shows that what was kept is enough for the later paths:
// a reload adding a real server behind another link attaches the SYN
// receiver and the passive programs there (TC/TCX, raw sockets, map
// updates), the control socket and /metrics answer, and the stop
// detaches every program and gives the reserved ports back.
func TestCapabilitiesDropped(t *testing.T) {
	testenv.RequireRoot(t)
	n := testnet.New(t, testnet.Options{RealServers: 2})
	for _, rs := range n.RealServers {
		go acceptAndReset(rs.Listen(t, "tcp", ":8080"))
	}
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	write := func(rss ...*testnet.RealServer) {
		var b strings.Builder
		for _, rs := range rss {
			fmt.Fprintf(&b, capsRS, rs.Addr)
		}
		if err := os.WriteFile(path, fmt.Appendf(nil, capsConf, b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(n.RealServers[0])
	resvBefore, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_reserved_ports")
	if err != nil {
		t.Fatal(err)
	}

	metrics := freePort(t)
	d := newDaemon(t, metrics)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	d.start(t, daemonCmd(t, ctx, "run", "-f", path, "--ipvs=dry-run", "--syn-probe-interval=50ms",
		"--passive-interval=200ms", "--metrics-listen="+metrics, "--control-socket="+d.socket), false)
	logHas := func(s string) func() (bool, string) {
		return func() (bool, string) {
			d.alive(t)
			return strings.Contains(d.stderr.String(), s), "log without " + s
		}
	}
	waitFor(t, 30*time.Second, "the capability drop", logHas("capabilities dropped after start-up"))
	if !strings.Contains(d.stderr.String(), "receiver=ebpf") || !strings.Contains(d.stderr.String(), "passive observation on") {
		testenv.SkipOrFail(t, "the eBPF receiver or the passive observer is not available here")
	}

	want := caps.Of(caps.NetAdmin, caps.NetRaw, caps.NetBindService, caps.BPF)
	threads := procCaps(t, d.cmd.Process.Pid)
	if len(threads) < 2 {
		t.Fatalf("%d threads: a Go daemon has several", len(threads))
	}
	for _, tc := range threads {
		if tc.eff != want || tc.prm != want || tc.bnd != want || tc.inh != 0 || tc.amb != 0 {
			t.Errorf("thread %s: effective %s, permitted %s, bounding %s, inheritable %s, ambient %s; want %s in the first three and none in the others",
				tc.tid, tc.eff, tc.prm, tc.bnd, tc.inh, tc.amb, want)
		}
	}

	// A reload adds a real server behind the second link.
	rs1 := n.RealServers[1]
	if tcx, f := tcIngress(t, rs1.Link); tcx+f != 0 {
		t.Fatalf("before the reload: %d programs on %s", tcx+f, rs1.Link)
	}
	write(n.RealServers...)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the SYN receiver and the passive program on "+rs1.Link, func() (bool, string) {
		d.alive(t)
		tcx, f := tcIngress(t, rs1.Link)
		return tcx+f == 2, fmt.Sprintf("%d TCX programs and %d filters", tcx, f)
	})
	waitFor(t, 20*time.Second, "the new real server's SYN-ACKs", func() (bool, string) {
		expo, err := d.scrape(ctx)
		if err != nil {
			return false, err.Error()
		}
		v, _ := sample(expo, "lvsprobe_synprobe_targets")
		return v == 2, fmt.Sprintf("lvsprobe_synprobe_targets %v", v)
	})
	st, err := d.status(ctx)
	if err != nil {
		t.Fatalf("status after the drop: %v", err)
	}
	if st.LastReload == nil || !st.LastReload.OK {
		t.Errorf("last reload: %+v", st.LastReload)
	}

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		if err != nil {
			t.Fatalf("lvsprobe exited: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("lvsprobe did not stop")
	}
	for _, rs := range n.RealServers {
		if tcx, f := tcIngress(t, rs.Link); tcx+f != 0 {
			t.Errorf("after exit: %d TCX programs and %d tc filters left on %s", tcx, f, rs.Link)
		}
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_local_reserved_ports"); string(b) != string(resvBefore) {
		t.Errorf("after exit, reserved ports %q, want %q", b, resvBefore)
	}
	for _, bad := range []string{"not permitted", "permission denied"} {
		if strings.Contains(strings.ToLower(d.stderr.String()), bad) {
			t.Errorf("log has %q:\n%s", bad, d.stderr.String())
		}
	}
}
