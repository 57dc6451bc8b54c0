package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/vishvananda/netlink"
)

// synConf has TCP real servers at ADDR on ports PORT_A and PORT_B, and a UDP one
// that is not probed.
const synConf = `virtual_server 198.18.250.1 80 {
    delay_loop 1
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server ADDR PORT_A {
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server ADDR PORT_B {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
virtual_server 198.18.250.1 53 {
    delay_loop 1
    protocol UDP
    real_server ADDR 53 {
        weight 1
    }
}
`

// logLines is a writer that hands each log record (slog's text handler
// writes one per call) to a channel.
type logLines chan string

func (l logLines) Write(b []byte) (int, error) {
	select {
	case l <- string(b):
	default: // the test stopped reading
	}
	return len(b), nil
}

// tcIngress returns the TCX programs and the BPF tc filters on the
// ingress of the named link.
func tcIngress(t *testing.T, name string) (tcx, filters int) {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if q, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: ebpf.AttachTCXIngress}); err == nil {
		tcx = len(q.Programs)
	}
	fs, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if _, ok := f.(*netlink.BpfFilter); ok {
			filters++
		}
	}
	return tcx, filters
}

// TestRunSynProbe runs `lvsprobe run` against a real server in its own
// network namespace: the SYN prober starts on the TCP targets of the
// parsed keepalived.conf with the real eBPF receiver, sees a RST when a
// listener stops, follows a reload, and leaves no TC attachment and no
// reserved port range behind.
func TestRunSynProbe(t *testing.T) {
	n := testnet.New(t, testnet.Options{})
	rs := n.RealServers[0]
	for _, port := range []string{"8080", "8081"} {
		go acceptAndReset(rs.Listen(t, "tcp", ":"+port))
	}
	stopping := rs.Listen(t, "tcp", ":8082")
	go acceptAndReset(stopping)

	conf := func(a, b string) string {
		return strings.NewReplacer("ADDR", rs.Addr.String(), "PORT_A", a, "PORT_B", b).Replace(synConf)
	}
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf("8080", "8082")), 0o644); err != nil {
		t.Fatal(err)
	}
	resvBefore, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_reserved_ports")
	if err != nil {
		t.Fatal(err)
	}
	// SIGHUP must never reach the default action (exit), even before
	// run's reload goroutine has asked for it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	p := runInProcess(t, slog.LevelDebug, 60*time.Second, "-f", path, "--ipvs=dry-run", "--syn-probe-interval=20ms", "--passive=off")
	expect, must := p.line, p.must
	target := func(port string) string { return "target=" + net.JoinHostPort(rs.Addr.String(), port) + " " }
	on := must(`msg="SYN probes on"`)
	if !strings.Contains(on, "receiver=ebpf") {
		testenv.SkipOrFail(t, "eBPF receiver not available: "+on)
	}
	if !strings.Contains(on, "targets=2 ") {
		t.Errorf("want 2 targets (the UDP service is skipped): %s", on)
	}
	if tcx, f := tcIngress(t, rs.Link); tcx+f != 1 {
		t.Errorf("while running: %d TCX programs and %d tc filters on %s, want 1", tcx, f, rs.Link)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_local_reserved_ports"); !strings.Contains(string(b), "61000-61999") {
		t.Errorf("while running, reserved ports %q lack 61000-61999", b)
	}

	must("SYN probe signal changed", target("8082"), "signal=synack")
	_ = stopping.Close()
	must("SYN probe signal changed", target("8082"), "signal=rst")

	// Reload: 8082 goes, 8081 comes.
	if err := os.WriteFile(path, []byte(conf("8080", "8081")), 0o644); err != nil {
		t.Fatal(err)
	}
	reloaded := false
	for range 20 { // the reload goroutine may not be listening yet
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		if _, reloaded = expect(time.Second, "SYN probe targets updated", "added=1 removed=1 targets=2"); reloaded {
			break
		}
	}
	if !reloaded {
		t.Fatal("no reload of the SYN probe targets")
	}
	must("SYN probe signal changed", target("8081"), "signal=synack")

	p.stop()
	if tcx, f := tcIngress(t, rs.Link); tcx+f != 0 {
		t.Errorf("after exit: %d TCX programs and %d tc filters left on %s", tcx, f, rs.Link)
	}
	if b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_local_reserved_ports"); string(b) != string(resvBefore) {
		t.Errorf("after exit, reserved ports %q, want %q", b, resvBefore)
	}
}

// TestParsePortRange checks the accepted forms of --syn-probe-ports.
func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi uint16
		ok     bool
	}{
		{"61000-61999", 61000, 61999, true},
		{" 5000 ", 5000, 5000, true},
		{"1-65535", 1, 65535, true},
		{"0-10", 0, 0, false},
		{"10-9", 0, 0, false},
		{"10-", 0, 0, false},
		{"-10", 0, 0, false},
		{"70000", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		lo, hi, err := parsePortRange(tt.in)
		if (err == nil) != tt.ok || lo != tt.lo || hi != tt.hi {
			t.Errorf("parsePortRange(%q) = %d, %d, %v", tt.in, lo, hi, err)
		}
	}
}

// FuzzParsePortRange: any accepted range is non-empty, excludes port 0
// and prints back to itself.
func FuzzParsePortRange(f *testing.F) {
	for _, s := range []string{"61000-61999", "1", "0-1", "9-8", "65535-65536", " 2-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lo, hi, err := parsePortRange(s)
		if err != nil {
			return
		}
		if lo == 0 || hi < lo {
			t.Fatalf("%q: accepted %d-%d", s, lo, hi)
		}
		lo2, hi2, err := parsePortRange(fmt.Sprintf("%d-%d", lo, hi))
		if err != nil || lo2 != lo || hi2 != hi {
			t.Fatalf("%q: %d-%d does not round-trip: %d-%d %v", s, lo, hi, lo2, hi2, err)
		}
	})
}

// envRunHelper makes TestRunHelper run `lvsprobe run` (see
// TestRunWithoutRawSockets).
const envRunHelper = "LVSPROBE_TEST_RUN_HELPER"

// TestRunWithoutRawSockets runs `lvsprobe run` in a process without
// CAP_NET_RAW: it warns once that SYN probes are unavailable and goes on
// with its full checks.
func TestRunWithoutRawSockets(t *testing.T) {
	testenv.RequireRoot(t)
	setpriv := testenv.RequireProgram(t, "setpriv")
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, setpriv, "--bounding-set=-net_raw", "--", os.Args[0], "-test.run=^TestRunHelper$", "-test.v")
	cmd.Env = append(os.Environ(), envRunHelper+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestRunHelper") {
		t.Fatalf("helper did not run:\n%s", out)
	}
	warns := 0
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "level=WARN") {
			warns++
		}
	}
	if warns != 1 || !strings.Contains(string(out), `level=WARN msg="SYN probes unavailable; running full checks only"`) {
		t.Errorf("want one warning, that SYN probes are unavailable:\n%s", out)
	}
}

// TestRunHelper is TestRunWithoutRawSockets's child: it runs `lvsprobe
// run` against a listener on loopback until the full check has put the
// real server into IPVS (dry-run), then stops it.
func TestRunHelper(t *testing.T) {
	if os.Getenv(envRunHelper) == "" {
		t.Skip("run by TestRunWithoutRawSockets")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go acceptAndReset(l)
	_, port, _ := net.SplitHostPort(l.Addr().String())
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(strings.Replace(runConf, "PORT", port, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	e := &env{stdout: pw, stderr: os.Stderr, log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, e, []string{"run", "-f", path, "--ipvs=dry-run"})
		_ = pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	added := false
	for !added && lines.Scan() {
		added = strings.Contains(lines.Text(), "ipvsadm -a")
	}
	if !added {
		t.Fatalf("no real server added (%v)", ctx.Err())
	}
	cancel()
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if c := <-code; c != 0 {
		t.Fatalf("run exited %d", c)
	}
}
