package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// allowed maps a configuration of the corpus to the deliberate
// differences between keepalived's table and lvsprobe's (see the
// internal/ipvs package comment): a function that turns the table
// keepalived converged to into the one lvsprobe must converge to. The
// differences listed there concern restarts, lvs_flush and stopping,
// which these runs (each from an empty table) do not exercise, so no
// configuration needs an entry today; a new one must say why here.
var allowed = map[string]func(table) table{}

// readGolden reads testdata/name: a normalized table, one line per line
// ("TCP 198.19.0.1:80 rr", "  -> RS0:80 Masq 1 0 0": address, method,
// weight, upper and lower threshold), real servers named RS0, RS1...
func readGolden(t *testing.T, name string) table {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read golden: %v", err)
	}
	tb, err := parseTable(printTable(strings.Split(strings.TrimSpace(string(b)), "\n")))
	if err != nil {
		t.Fatalf("golden %s: %v", name, err)
	}
	return tb
}

// sub returns the lab for a subtest: the same real servers, failures and
// cleanups on t, and the table flushed when it ends.
func (l *lab) sub(t *testing.T) *lab {
	c := *l
	c.t = t
	t.Cleanup(func() { c.ipvsadmRun("-C") })
	return &c
}

// TestKeepalivedOracle runs keepalived 2.2.7 alone, then lvsprobe alone,
// on every configuration of testdata/*.conf with the same three real
// servers, and requires both to converge to the same table (testdata's
// NAME.up), and again after real server 0 fails (NAME.down). The golden
// files make convergence an event to wait for; a keepalived that does not
// reach them fails the test before lvsprobe runs, so a wrong golden is
// never taken for lvsprobe's bug.
func TestKeepalivedOracle(t *testing.T) {
	l := newLab(t, 3)
	base := l.sub(t)
	confs, err := filepath.Glob(filepath.Join("testdata", "*.conf"))
	if err != nil || len(confs) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, path := range confs {
		name := strings.TrimSuffix(filepath.Base(path), ".conf")
		if _, own := notOracle[name]; own {
			continue
		}
		t.Run(name, func(t *testing.T) {
			l := base.sub(t)
			conf := l.writeConfig(name + ".conf")
			up, down := readGolden(t, name+".up"), readGolden(t, name+".down")

			ka := l.run("keepalived", l.startKeepalived(conf), up, down)
			lpUp, lpDown := up, down
			if f := allowed[name]; f != nil {
				lpUp, lpDown = f(up), f(down)
			}
			lp := l.run("lvsprobe", l.startLvsprobe(conf), lpUp, lpDown)
			for i := range ka {
				if f := allowed[name]; f != nil {
					ka[i] = f(ka[i])
				}
				if !slices.Equal(ka[i], lp[i]) {
					t.Errorf("phase %d: keepalived\n%s\nlvsprobe\n%s", i, ka[i], lp[i])
				}
			}
		})
	}
}

// notOracle names the configurations of testdata that other tests own,
// with the reason keepalived cannot be their oracle here.
var notOracle = map[string]string{
	// keepalived's ladder of delay_loop 30 and retry 3 × 5 s is the point
	// of TestDetectorKillToOutOfTable: keepalived would take up to 45 s.
	"detector": "TestDetectorKillToOutOfTable owns it",
	// The fault tests' configurations need their fault (Go servers on
	// port 8080, a scheduler module refused, netem, a client under load).
	"faults-flap":   "TestFaultFlapping owns it",
	"faults-kill":   "TestFaultKillUnderLoad owns it",
	"faults-netem":  "TestFaultNetem owns it",
	"faults-refuse": "TestFaultSchedulerRefused owns it",
}

// run waits for p to converge to up, fails real server 0 and waits for
// down, restores it, stops p and flushes the table. It returns the two
// tables it saw.
func (l *lab) run(who string, p *proc, up, down table) [2]table {
	l.t.Helper()
	var got [2]table
	got[0] = l.waitTable(who+": all real servers alive", up, p)
	l.nginx[0].Stop(l.t)
	got[1] = l.waitTable(who+": real server 0 failed", down, p)
	l.nginx[0].Start(l.t)
	l.stop(p)
	l.ipvsadmRun("-C")
	return got
}
