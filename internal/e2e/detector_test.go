package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/ipvs"
)

// detectorService is the service of testdata/detector.conf.
var detectorService = config.ServiceKey{Protocol: config.TCP, Addr: netip.MustParseAddr("198.19.0.1"), Port: 80, Family: "inet"}

// inTable reports whether addr:80 is a destination of detectorService
// with a weight above 0, read over netlink (much faster than ipvsadm in
// the emulated guest, so the measured times are lvsprobe's).
func inTable(t *testing.T, k *ipvs.Kernel, addr netip.Addr) bool {
	t.Helper()
	ds, err := k.Destinations(context.Background(), detectorService)
	if err != nil {
		t.Fatalf("list destinations: %v", err)
	}
	for _, d := range ds {
		if d.Addr == addr && d.Port == 80 && d.Weight > 0 {
			return true
		}
	}
	return false
}

// until polls every 2 ms until addr's presence is want and returns how
// long it took, failing the test after convergeTimeout.
func until(t *testing.T, k *ipvs.Kernel, lp *proc, addr netip.Addr, want bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for inTable(t, k, addr) != want {
		if err := lp.exited(); err != nil {
			t.Fatalf("lvsprobe exited: %v\n%s", err, lp.log())
		}
		if time.Since(t0) > convergeTimeout {
			t.Fatalf("%v in table = %t not reached within %v\n%s", addr, want, convergeTimeout, lp.log())
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(t0)
}

// TestDetectorKillToOutOfTable runs lvsprobe with its SYN probes and the
// failure detector on real IPVS, with keepalived's slow ladder
// (delay_loop 30, retry 3 × 5 s), and stops and restarts the nginx of
// each real server in turn: each must leave the table and come back long
// before delay_loop, with the RST and the SYN-ACK as the logged evidence.
func TestDetectorKillToOutOfTable(t *testing.T) {
	l := newLab(t, 3)
	lp := l.start(l.lvsprobe, "run", "-f", l.writeConfig("detector.conf"), "--ipvs=kernel",
		"--metrics-listen=", "--control-socket=")
	k, err := ipvs.NewKernel(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	l.waitFor("three real servers in", func(tb table) bool { return strings.Count(tb.String(), "Masq 1") == 3 }, lp)
	l.waitFor("first verdicts", func(table) bool { return lp.count(`msg="real server up"`) >= 3 }, lp)
	if !strings.Contains(lp.log(), `msg="failure detector on"`) || !strings.Contains(lp.log(), "receiver=") {
		t.Fatalf("SYN probes or the detector are not on:\n%s", lp.log())
	}

	const bound = 10 * time.Second // delay_loop is 30 s; keepalived's ladder alone 15 s
	for i, rs := range l.rs {
		l.nginx[i].Stop(t)
		out := until(t, k, lp, rs.Addr, false)
		l.nginx[i].Start(t)
		back := until(t, k, lp, rs.Addr, true)
		t.Logf("RS%d: killed → out of the table %v; restarted → back %v", i, out, back)
		if out > bound || back > bound {
			t.Errorf("RS%d: out after %v, back after %v; want both under %v", i, out, back, bound)
		}
	}
	// A scheduled check may now and then see the refused connect before
	// the probe's RST is read: then the change is right but its first
	// evidence is the check. Most must come from the fast signals.
	if n := lp.count("first_signal=rst"); n < len(l.rs)-1 {
		t.Errorf("%d removals with the RST as first signal, want at least %d\n%s", n, len(l.rs)-1, lp.log())
	}
	if n := lp.count("first_signal=synack"); n < len(l.rs)-1 {
		t.Errorf("%d recoveries started by a SYN-ACK, want at least %d\n%s", n, len(l.rs)-1, lp.log())
	}
}
