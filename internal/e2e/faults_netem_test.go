package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// netemHold is how long the lossy real server is watched under its faults.
const netemHold = 40 * time.Second

// TestFaultNetem puts tc netem on real-server links while lvsprobe runs
// with its defaults (SYN probes, passive observer, detector) on real
// IPVS: RS0's link loses 30 % of the director's packets and delays its
// answers by 100 ms ± 80 ms (jitter, so reordering); RS1's link delays
// the director's packets by 6 s, above connect_timeout (4 s); RS2 is
// clean. RS0 and RS2 must never leave the table, RS1 must leave it once
// and come back once its delay is removed, and the foreign service must
// stay as it was.
func TestFaultNetem(t *testing.T) {
	l := newLab(t, 3)
	l.addForeign()
	p := l.startRun(l.writeConfig("faults-netem.conf"), nil)
	svc := tcpService("198.19.0.1", 80)
	l.waitTable("all real servers in", with("TCP 198.19.0.1:80 rr",
		"  -> RS0:80 Masq 1 0 0", "  -> RS1:80 Masq 1 0 0", "  -> RS2:80 Masq 1 0 0"), p.proc)
	l.waitFor("first verdicts", func(table) bool { return p.count(`msg="real server up"`) >= 3 }, p.proc)
	key := func(i int) string { return fmt.Sprintf("198.19.0.1:80 -> %s:80", l.rs[i].Addr) }

	w := watchDests(t, []config.ServiceKey{svc}, 50*time.Millisecond, 4*time.Minute)
	start := time.Now()
	l.tc(-1, "qdisc", "add", "dev", l.rs[0].Link, "root", "netem", "loss", "30%")
	l.tc(0, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "100ms", "80ms")
	l.tc(-1, "qdisc", "add", "dev", l.rs[1].Link, "root", "netem", "delay", "6s")

	out := l.waitServing(w, p, key(1), false, 2*convergeTimeout)
	t.Logf("RS1 (6 s delay) out of the table %v after the delay began", out.Sub(start).Round(time.Millisecond))
	if d := netemHold - time.Since(start); d > 0 {
		time.Sleep(d) // the lossy real server's exposure: nothing to wait for but time
	}
	lifted := time.Now()
	l.tc(-1, "qdisc", "del", "dev", l.rs[1].Link, "root")
	back := l.waitServing(w, p, key(1), true, 2*convergeTimeout)
	t.Logf("RS1 back %v after its delay was removed", back.Sub(lifted).Round(time.Millisecond))
	polls := w.stop(t)

	for i, want := range []int{0, 1, 0} {
		outs, ins := w.counts(key(i))
		if outs != want || ins != want {
			t.Errorf("RS%d left the table %d times and came back %d times, want %d and %d", i, outs, ins, want, want)
		}
	}
	dropped := netemDropped(t, l.rs[0].Link)
	if dropped == 0 {
		t.Errorf("netem dropped nothing on RS0's link: the loss was not applied")
	}
	t.Logf("%d netlink polls over %v; netem dropped %d packets to RS0, which stayed in", polls,
		time.Since(start).Round(time.Second), dropped)
	l.requireForeign(l.waitTable("the table as at the start", with("TCP 198.19.0.1:80 rr",
		"  -> RS0:80 Masq 1 0 0", "  -> RS1:80 Masq 1 0 0", "  -> RS2:80 Masq 1 0 0"), p.proc))
	if n := p.count(`msg="real server down"`); n != 1 {
		t.Errorf("%d real servers went down, want 1 (RS1)\n%s", n, p.log())
	}
}

// droppedRE finds netem's drop counter in tc -s qdisc output.
var droppedRE = regexp.MustCompile(`dropped (\d+)`)

// netemDropped returns how many packets the root qdisc of the director's
// link dropped.
func netemDropped(t *testing.T, link string) int {
	t.Helper()
	out := runOut(t, "tc", "-s", "qdisc", "show", "dev", link, "root")
	m := droppedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no drop counter in tc -s qdisc:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
