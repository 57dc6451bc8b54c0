package e2e

import (
	"slices"
	"syscall"
	"testing"
)

// foreign is a service created with ipvsadm behind lvsprobe's back: not in
// any configuration, so lvsprobe must never touch it.
var foreign = table{"TCP 198.19.9.9:80 rr", "  -> RS0:80 Masq 7 0 0"}

// addForeign creates the foreign service.
func (l *lab) addForeign() {
	l.t.Helper()
	l.ipvsadmRun("-A", "-t", "198.19.9.9:80", "-s", "rr")
	l.ipvsadmRun("-a", "-t", "198.19.9.9:80", "-r", l.rs[0].Addr.String()+":80", "-m", "-w", "7")
}

// requireForeign fails unless the foreign service is exactly as created.
func (l *lab) requireForeign(tb table) {
	l.t.Helper()
	if got := tb.service(foreign[0]); !slices.Equal(got, foreign) {
		l.t.Fatalf("foreign service changed: got\n%s\nwant\n%s", got, foreign)
	}
}

// with returns the table of the foreign service and the lines of owned.
func with(owned ...string) table {
	tb, err := parseTable(printTable(append(slices.Clone([]string(foreign)), owned...)))
	if err != nil {
		panic(err)
	}
	return tb
}

// withGolden returns the table of the foreign service and of
// testdata/name (see readGolden).
func withGolden(t *testing.T, name string) table { return with(readGolden(t, name)...) }

// TestRealServerDownAndBack: a real server whose nginx stops is removed
// (and kept at weight 0 under inhibit_on_failure), comes back when nginx
// restarts; drift made with ipvsadm -d is repaired within the resync
// interval; the foreign service is never touched.
func TestRealServerDownAndBack(t *testing.T) {
	l := newLab(t, 2)
	l.addForeign()
	lp := l.startLvsprobe(l.writeConfig("lifecycle.conf"))
	up := withGolden(t, "lifecycle.up")
	l.waitTable("all real servers in", up, lp)

	l.nginx[0].Stop(t)
	l.waitTable("real server 0 out (weight 0 where inhibited)", withGolden(t, "lifecycle.down"), lp)

	l.nginx[0].Start(t)
	l.waitTable("real server 0 back", up, lp)

	// Drift: a human deletes a healthy destination and re-weights another.
	l.ipvsadmRun("-d", "-t", "198.19.0.1:80", "-r", l.rs[1].Addr.String()+":80")
	l.ipvsadmRun("-e", "-t", "198.19.0.2:80", "-r", l.rs[0].Addr.String()+":80", "-m", "-w", "9")
	if tb := l.table(); tb.String() == up.String() {
		t.Fatalf("drift was not made:\n%s", tb)
	}
	l.requireForeign(l.waitTable("drift repaired", up, lp))
}

// TestQuorumSorryServer: losing quorum brings the sorry server in instead
// of the real servers; regaining it takes the sorry server out.
func TestQuorumSorryServer(t *testing.T) {
	l := newLab(t, 3)
	l.addForeign()
	lp := l.startLvsprobe(l.writeConfig("quorum.conf"))
	up := withGolden(t, "quorum.up")
	l.waitTable("quorum", up, lp)

	l.nginx[0].Stop(t)
	l.waitTable("quorum lost: sorry server only", withGolden(t, "quorum.down"), lp)

	l.nginx[0].Start(t)
	l.requireForeign(l.waitTable("quorum regained: sorry server out", up, lp))
}

// TestRestartWithoutChurn: stopping lvsprobe leaves the table (no
// lvs_flush_on_stop) and a new lvsprobe adopts it: no healthy destination
// is missing from any table read during the restart, and the table after
// is the table before.
func TestRestartWithoutChurn(t *testing.T) {
	l := newLab(t, 2)
	l.addForeign()
	conf := l.writeConfig("lifecycle.conf")
	lp := l.startLvsprobe(conf)
	before := l.waitTable("all real servers in", withGolden(t, "lifecycle.up"), lp)

	w := l.watch(before)
	l.stop(lp)
	lp2 := l.startLvsprobe(conf)
	// Four checks: wait until the new process has a verdict on each (and
	// so has reconciled with every health known).
	l.waitFor("the new lvsprobe's first verdicts", func(table) bool { return lp2.count("real server up") >= 4 }, lp2)
	after := l.waitTable("the same table", before, lp2)
	bad, polls := w.stop()
	if len(bad) > 0 {
		t.Fatalf("restart churned the table (%d of %d polls):\n%s", len(bad), polls, bad[0])
	}
	if polls < 2 {
		t.Fatalf("watched the restart with only %d polls", polls)
	}
	t.Logf("%d polls during the restart, no healthy destination missing", polls)
	l.requireForeign(after)
}

// TestReloadChangesOnlyWhatChanged: a SIGHUP reload removes real server 0
// and adds real server 2 to one service; the kept destination and the
// other service never leave the table.
func TestReloadChangesOnlyWhatChanged(t *testing.T) {
	l := newLab(t, 3)
	l.addForeign()
	conf := l.writeConfig("reload-before.conf")
	lp := l.startLvsprobe(conf)
	l.waitTable("before the reload", withGolden(t, "reload-before.up"), lp)

	keep := with("TCP 198.19.0.4:80 rr", "  -> RS1:80 Masq 1 0 0", "TCP 198.19.0.5:80 wrr", "  -> RS2:80 Masq 4 0 0")
	w := l.watch(keep)
	l.renderConfig("reload-after.conf", conf)
	if err := lp.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP: %v", err)
	}
	after := l.waitTable("after the reload", withGolden(t, "reload-after.up"), lp)
	bad, polls := w.stop()
	if len(bad) > 0 {
		t.Fatalf("reload touched what did not change (%d of %d polls):\n%s", len(bad), polls, bad[0])
	}
	if n := lp.count("configuration reloaded"); n != 1 {
		t.Fatalf("lvsprobe logged %d reloads, want 1\n%s", n, lp.log())
	}
	l.requireForeign(after)
}
