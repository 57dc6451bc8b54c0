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
		// The table changes before the change is logged: wait for the
		// log line too before its evidence is read below.
		dest := `real_server="TCP 198.19.0.1:80 -> ` + rs.Addr.String() + `:80"`
		downs, ups := lp.count(`msg="real server down" `+dest), lp.count(`msg="real server up" `+dest)
		l.nginx[i].Stop(t)
		out := until(t, k, lp, rs.Addr, false)
		l.waitFor("RS removal logged", func(table) bool { return lp.count(`msg="real server down" `+dest) > downs }, lp)
		l.nginx[i].Start(t)
		back := until(t, k, lp, rs.Addr, true)
		l.waitFor("RS recovery logged", func(table) bool { return lp.count(`msg="real server up" `+dest) > ups }, lp)
		t.Logf("RS%d: killed → out of the table %v; restarted → back %v", i, out, back)
		if out > bound || back > bound {
			t.Errorf("RS%d: out after %v, back after %v; want both under %v", i, out, back, bound)
		}
	}
	// Every change must carry its fast signal: each removal cut short by
	// the probe's RST, each recovery with the SYN-ACK among its evidence.
	// (The RST is nearly always the first signal too, but a scheduled
	// check may land in the probe's 100 ms window, once in about 300
	// kills with delay_loop 30: the RST then corroborates that check.)
	cut, synack := 0, 0
	for _, line := range strings.Split(lp.log(), "\n") {
		down, up := strings.Contains(line, `msg="real server down"`), strings.Contains(line, `msg="real server up"`)
		if i := strings.Index(line, "signals="); (down || up) && i >= 0 {
			t.Logf("evidence: %s", line[i:])
			if down && strings.Contains(line, `ladder_cut_by="rst`) {
				cut++
			}
			sigs, _, _ := strings.Cut(line[i:], " first_signal=")
			if up && strings.Contains(sigs, "synack") {
				synack++
			}
		}
	}
	if cut < len(l.rs) {
		t.Errorf("%d removals cut short by the RST, want %d\n%s", cut, len(l.rs), lp.log())
	}
	if synack < len(l.rs) {
		t.Errorf("%d recoveries with the SYN-ACK as evidence, want %d\n%s", synack, len(l.rs), lp.log())
	}
}
