package loader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// inKernelLab reports whether the test runs in the kernel lab's guest
// (scripts/vmlab), which has netem and IPVS.
func inKernelLab() bool { return os.Getenv("LVSPROBE_VMLAB") == "1" }

// serve accepts and closes connections on l until it is closed.
func serve(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// handshakes dials to n times from client and returns the latency
// histogram of the handshakes the passive programs timed meanwhile.
func handshakes(t *testing.T, p *Passive, client *testnet.RealServer, to, rs netip.AddrPort, n int) Histogram {
	t.Helper()
	before := counters(t, p, rs)
	for range n {
		c, err := dial(client, to, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	after := counters(t, p, rs)
	return after.Latency.sub(&before.Latency)
}

// TestPassiveNetemLatency: a real server slowed with netem delay (the
// kernel lab has netem, the host has not) moves the handshake-latency
// histogram by the delay.
func TestPassiveNetemLatency(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, HandshakeSample: 1})
	client, rs := routed(t, p)
	target := netip.AddrPortFrom(rs.Addr, 8080)
	if err := p.SetRealServers([]netip.AddrPort{target}); err != nil {
		t.Fatal(err)
	}
	go serve(rs.Listen(t, "tcp", target.String()))

	base := handshakes(t, p, client, target, target, 10)
	if base.Count() != 10 {
		t.Fatalf("timed %d of 10 handshakes", base.Count())
	}
	const delay = 50 * time.Millisecond
	out, err := rs.Command(context.Background(), "tc", "qdisc", "add", "dev", "eth0", "root", "netem", "delay", delay.String()).CombinedOutput()
	if err != nil {
		if inKernelLab() {
			t.Fatalf("netem in the kernel lab: %v: %s", err, out)
		}
		t.Skipf("no netem on this kernel (runs in the kernel lab, make vmtest): %v: %s", err, strings.TrimSpace(string(out)))
	}
	slow := handshakes(t, p, client, target, target, 10)
	if slow.Count() != 10 {
		t.Fatalf("timed %d of 10 delayed handshakes", slow.Count())
	}
	t.Logf("p50 before %v, with %v netem delay %v", base.Quantile(0.5), delay, slow.Quantile(0.5))
	// Bucket upper bounds: a 50 ms latency lands in [32.8 ms, 65.5 ms).
	if q := slow.Quantile(0.1); q < delay {
		t.Errorf("p10 with netem delay %v = %v, want >= %v", delay, q, delay)
	}
	if base.Quantile(0.9) >= slow.Quantile(0.1) {
		t.Errorf("histogram did not move: p90 before %v, p10 after %v", base.Quantile(0.9), slow.Quantile(0.1))
	}
}

// TestPassiveIPVSNAT: behind real IPVS-NAT (the kernel lab), the programs
// on the real server's link see the rewritten traffic: the client's SYN to
// the virtual address counts for the real server, and a killed server's
// refusals come back as refusal events.
func TestPassiveIPVSNAT(t *testing.T) {
	testenv.RequireRoot(t)
	ipvsadm := testenv.RequireProgram(t, "ipvsadm")
	if out, err := exec.Command(ipvsadm, "-Ln").CombinedOutput(); err != nil {
		testenv.SkipForKernelLab(t, fmt.Errorf("ipvsadm -Ln: %w: %s", err, out))
	}
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, HandshakeSample: 1})
	client, rs := routed(t, p)
	target := netip.AddrPortFrom(rs.Addr, 8080)
	if err := p.SetRealServers([]netip.AddrPort{target}); err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddrPort("198.19.255.100:80")
	for _, args := range [][]string{
		{"ip", "addr", "add", vip.Addr().String() + "/32", "dev", "lo"},
		{ipvsadm, "-A", "-t", vip.String(), "-s", "rr"},
		{ipvsadm, "-a", "-t", vip.String(), "-r", target.String(), "-m"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command(ipvsadm, "-D", "-t", vip.String()).Run() })
	l := rs.Listen(t, "tcp", target.String())
	go serve(l)
	h := handshakes(t, p, client, vip, target, 5)
	if h.Count() != 5 {
		t.Fatalf("timed %d of 5 handshakes through IPVS", h.Count())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	l.Close()
	if _, err := dial(client, vip, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial with the server gone = %v", err)
	}
	waitEvent(t, p, EventRefused, target) // the first RST, and a refusal
	if c := counters(t, p, target); c.SYNs != 6 || c.Refused != 1 {
		t.Errorf("counters %+v", c)
	}
}
