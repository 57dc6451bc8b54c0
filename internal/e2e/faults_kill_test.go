package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// The load of TestFaultKillUnderLoad: wrk with a fresh connection per
// request (so every request goes through IPVS's scheduling), bounded.
const (
	wrkConns    = 8
	wrkDuration = 20 * time.Second
)

// vipClient makes a client namespace that reaches the VIP 198.19.0.1
// through the director (IPVS-NAT): the VIP on the director's lo,
// forwarding on, the client's route to 198.19.0.0/16 and the real
// servers' route back through the director. Undone on cleanup.
func (l *lab) vipClient() *testnet.RealServer {
	l.t.Helper()
	cl := testnet.New(l.t, testnet.Options{RealServers: 1}).RealServers[0]
	const fwd = "/proc/sys/net/ipv4/ip_forward"
	if err := os.WriteFile(fwd, []byte("1"), 0o644); err != nil {
		l.t.Fatalf("enable forwarding: %v", err)
	}
	l.t.Cleanup(func() { _ = os.WriteFile(fwd, []byte("0"), 0o644) })
	runOut(l.t, "ip", "addr", "add", "198.19.0.1/32", "dev", "lo")
	l.t.Cleanup(func() { _, _ = runCmd("ip", "addr", "del", "198.19.0.1/32", "dev", "lo") })
	cl.Run(l.t, "ip", "route", "add", "198.19.0.0/16", "via", cl.Director.String())
	for _, rs := range l.rs {
		rs.Run(l.t, "ip", "route", "add", cl.Addr.String()+"/32", "via", rs.Director.String())
	}
	return cl
}

// wrkResult is what a wrk run reports.
type wrkResult struct {
	requests                           int
	connect, read, write, timeout, bad int // socket errors; bad: non-2xx/3xx responses
	out                                string
}

// lost returns the requests that failed.
func (r wrkResult) lost() int { return r.connect + r.read + r.write + r.timeout + r.bad }

var (
	wrkRequestsRE = regexp.MustCompile(`(\d+) requests in`)
	wrkSocketRE   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkBadRE      = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk parses wrk's report.
func parseWrk(out string) (wrkResult, error) {
	r := wrkResult{out: out}
	m := wrkRequestsRE.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no request count in wrk's report:\n%s", out)
	}
	r.requests, _ = strconv.Atoi(m[1])
	if m := wrkSocketRE.FindStringSubmatch(out); m != nil {
		r.connect, _ = strconv.Atoi(m[1])
		r.read, _ = strconv.Atoi(m[2])
		r.write, _ = strconv.Atoi(m[3])
		r.timeout, _ = strconv.Atoi(m[4])
	}
	if m := wrkBadRE.FindStringSubmatch(out); m != nil {
		r.bad, _ = strconv.Atoi(m[1])
	}
	return r, nil
}

func TestParseWrk(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      wrkResult
		err       bool
	}{
		{name: "clean", out: "  1520 requests in 20.01s, 372.07KB read\nRequests/sec:     75.96\n",
			want: wrkResult{requests: 1520}},
		{name: "errors", out: "  980 requests in 20.00s, 240KB read\n  Socket errors: connect 12, read 3, write 0, timeout 1\n  Non-2xx or 3xx responses: 2\n",
			want: wrkResult{requests: 980, connect: 12, read: 3, timeout: 1, bad: 2}},
		{name: "no report", out: "unable to connect to 198.19.0.1:80 Connection refused\n", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWrk(tc.out)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %t", err, tc.err)
			}
			got.out = ""
			if !tc.err && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got.lost() != tc.want.lost() && !tc.err {
				t.Fatalf("lost %d, want %d", got.lost(), tc.want.lost())
			}
		})
	}
}

// startWrk starts wrk in cl against the VIP; wait returns its report.
func startWrk(t *testing.T, cl *testnet.RealServer) (wait func() wrkResult) {
	t.Helper()
	bin := testenv.RequireProgram(t, "wrk")
	ctx, cancel := context.WithTimeout(context.Background(), wrkDuration+time.Minute)
	cmd := cl.Command(ctx, bin, "-t1", fmt.Sprintf("-c%d", wrkConns), fmt.Sprintf("-d%ds", int(wrkDuration.Seconds())),
		"--timeout", "10s", "-H", "Connection: close", "http://198.19.0.1/index.html")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start wrk: %v", err)
	}
	return func() wrkResult {
		t.Helper()
		defer cancel()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("wrk: %v\n%s", err, out.String())
		}
		r, err := parseWrk(out.String())
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

// ipvsConns returns the connections IPVS has scheduled since it loaded
// (/proc/net/ip_vs_stats, this namespace).
func ipvsConns(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/net/ip_vs_stats")
	if err != nil {
		t.Fatalf("read ip_vs_stats: %v", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 3 {
		t.Fatalf("short ip_vs_stats:\n%s", b)
	}
	f := strings.Fields(lines[2])
	if len(f) == 0 {
		t.Fatalf("no totals in ip_vs_stats:\n%s", b)
	}
	n, err := strconv.ParseUint(f[0], 16, 64)
	if err != nil {
		t.Fatalf("ip_vs_stats: %v\n%s", err, b)
	}
	return n
}

// waitConns waits until IPVS has scheduled n more connections than from.
func (l *lab) waitConns(from, n uint64) {
	l.t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for ipvsConns(l.t) < from+n {
		if time.Now().After(deadline) {
			l.t.Fatalf("fewer than %d connections through IPVS within %v", n, convergeTimeout)
		}
		time.Sleep(pollEvery)
	}
}

// kill sends SIGKILL to p and waits for it to exit.
func kill(t *testing.T, p *runProc) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	<-p.done
}

// synCounter counts, in rs's namespace, the SYNs to port 80 from src
// (nftables), so the connections sent to a failed real server can be
// told from the others. It returns the reader of the counter.
func synCounter(t *testing.T, rs *testnet.RealServer, src string) func() int {
	t.Helper()
	testenv.RequireProgram(t, "nft")
	rs.Run(t, "nft", "add table inet faults")
	rs.Run(t, "nft", "add chain inet faults in { type filter hook input priority 0 ; }")
	rs.Run(t, "nft", "add rule inet faults in ip saddr "+src+" tcp dport 80 tcp flags & (syn|ack) == syn counter")
	re := regexp.MustCompile(`counter packets (\d+)`)
	return func() int {
		m := re.FindStringSubmatch(rs.Run(t, "nft", "list chain inet faults in"))
		if m == nil {
			t.Fatal("no counter in the nft chain")
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
}

// TestFaultKillUnderLoad loads the VIP with wrk from a client namespace
// (through IPVS-NAT) while lvsprobe, with its defaults, is killed with
// SIGKILL and restarted, twice: first with every real server healthy —
// no request may fail and no destination leave the table — then with
// RS2's nginx stopped while lvsprobe is dead — the restarted lvsprobe
// must take RS2 out and only RS2, and every failed request must be
// accounted for by a connection that reached RS2 (counted there by
// nftables) or was in flight when it stopped.
func TestFaultKillUnderLoad(t *testing.T) {
	l := newLab(t, 3)
	// A director runs lvsprobe from its own disk: copy it off the lab's
	// 9p share, whose page-ins under load would slow every restart.
	l.lvsprobe = localCopy(t, l.lvsprobe)
	cl := l.vipClient()
	conf := l.writeConfig("faults-kill.conf")
	p := l.startRun(conf, nil)
	l.waitFor("three real servers in", func(tb table) bool { return strings.Count(tb.String(), "Masq 1") == 3 }, p.proc)
	l.waitFor("first verdicts", func(table) bool { return p.count(`msg="real server up"`) >= 3 }, p.proc)
	cl.Run(t, "curl", "-sf", "--max-time", "10", "-o", "/dev/null", "http://198.19.0.1/index.html")
	w := watchDests(t, []config.ServiceKey{tcpService("198.19.0.1", 80)}, 20*time.Millisecond, 5*time.Minute)
	key := func(i int) string { return fmt.Sprintf("198.19.0.1:80 -> %s:80", l.rs[i].Addr) }
	restart := func(phase string) *runProc {
		t.Helper()
		kill(t, p)
		c0 := ipvsConns(t)
		l.waitConns(c0, 50) // the load goes on with no lvsprobe
		np := l.startRun(conf, nil)
		l.waitLog(np, `msg="lvsprobe running"`, 3*time.Minute) // see phase 2
		l.waitFor(phase+": the new lvsprobe's verdicts", func(table) bool { return np.count(`msg="real server `) >= 3 }, np.proc)
		return np
	}

	// Phase 1: every real server healthy.
	wait := startWrk(t, cl)
	l.waitConns(ipvsConns(t), 50)
	p = restart("healthy")
	r1 := wait()
	for i := range 3 {
		if outs, _ := w.counts(key(i)); outs != 0 {
			t.Errorf("healthy phase: RS%d left the table %d times", i, outs)
		}
	}
	t.Logf("healthy phase: %d requests, %d failed; SIGKILL and restart under load", r1.requests, r1.lost())
	if r1.lost() != 0 || r1.requests == 0 {
		t.Errorf("healthy phase: %d of %d requests failed\n%s", r1.lost(), r1.requests, r1.out)
	}

	// Phase 2: RS2 fails while lvsprobe is dead.
	syns := synCounter(t, l.rs[2], cl.Addr.String())
	wait = startWrk(t, cl)
	l.waitConns(ipvsConns(t), 50)
	kill(t, p)
	l.nginx[2].Stop(t)
	stopped := time.Now()
	p = l.startRun(conf, nil)
	// The start (eBPF programs loaded and verified before the checks
	// begin) takes seconds in the emulated guest and over a minute when
	// the host is starved; the removal is bounded from there.
	l.waitLog(p, `msg="lvsprobe running"`, 3*time.Minute)
	out := l.waitServing(w, p, key(2), false, convergeTimeout)
	t.Logf("failed-server phase: RS2 out of the table %v after its nginx stopped and lvsprobe restarted; by its log: first line %v, "+
		"SYN probes on %v, passive observer on %v, running %v, RS2 down %v",
		out.Sub(stopped).Round(time.Millisecond), logSince(p.log(), "time=", stopped),
		logSince(p.log(), `msg="SYN probes on"`, stopped), logSince(p.log(), `msg="passive observation on"`, stopped),
		logSince(p.log(), `msg="lvsprobe running"`, stopped), logSince(p.log(), `msg="real server down"`, stopped))
	r2 := wait()
	toRS2 := syns()
	for i, want := range []int{0, 0, 1} {
		if outs, _ := w.counts(key(i)); outs != want {
			t.Errorf("RS%d left the table %d times, want %d", i, outs, want)
		}
	}
	polls := w.stop(t)
	t.Logf("failed-server phase: %d requests, %d failed (connect %d, read %d, write %d, timeout %d, non-2xx %d); %d SYNs reached RS2; %d netlink polls",
		r2.requests, r2.lost(), r2.connect, r2.read, r2.write, r2.timeout, r2.bad, toRS2, polls)
	if r2.lost() > toRS2+wrkConns {
		t.Errorf("%d requests failed, but only %d connections reached the failed RS2 (+%d in flight)\n%s",
			r2.lost(), toRS2, wrkConns, r2.out)
	}
	want := table{"TCP 198.19.0.1:80 rr", "  -> RS0:80 Masq 1 0 0", "  -> RS1:80 Masq 1 0 0"}
	if got := l.table().service("TCP 198.19.0.1:80"); got.String() != want.String() {
		t.Errorf("final table:\n%s\nwant\n%s", got, want)
	}
}

// logSince returns the time from t0 to the first log line holding sub,
// by the line's time= stamp, or -1 when there is none.
func logSince(log, sub string, t0 time.Time) time.Duration {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, sub) {
			continue
		}
		stamp, ok := strings.CutPrefix(line, "time=")
		if !ok {
			continue
		}
		stamp, _, _ = strings.Cut(stamp, " ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			continue
		}
		return at.Sub(t0).Round(time.Millisecond)
	}
	return -1
}

// localCopy copies the executable bin into a test directory (the guest's
// tmpfs) and returns the copy's path.
func localCopy(t *testing.T, bin string) string {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(bin))
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// waitLog waits until p has logged sub, failing the test after limit or
// when p exits.
func (l *lab) waitLog(p *runProc, sub string, limit time.Duration) {
	l.t.Helper()
	deadline := time.Now().Add(limit)
	for p.count(sub) == 0 {
		if err := p.exited(); err != nil {
			l.t.Fatalf("lvsprobe exited: %v\n%s", err, p.log())
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("no %s within %v\n%s", sub, limit, p.log())
		}
		time.Sleep(pollEvery)
	}
}
