package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/ipvs"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// convergeTimeout bounds every wait for the table to reach a state. Under
// TCG emulation a check round (delay_loop 1, connect_timeout 1) and a
// resync (5 s) take a few seconds; this leaves room for a slow guest.
const convergeTimeout = 45 * time.Second

// pollEvery is the period of table polls.
const pollEvery = 100 * time.Millisecond

// lab is one test's director: the real servers with nginx on port 80,
// and the programs it needs.
type lab struct {
	t        *testing.T
	lvsprobe string // the lvsprobe binary (LVSPROBE_BIN)
	ipvsadm  string
	rs       []*testnet.RealServer
	nginx    []*testnet.Nginx
}

// newLab checks what the tests need (root, IPVS in this kernel, the
// lvsprobe binary, ipvsadm), flushes the director's table, and starts n
// real servers with nginx.
func newLab(t *testing.T, n int) *lab {
	t.Helper()
	testenv.RequireRoot(t)
	requireIPVS(t)
	bin := os.Getenv("LVSPROBE_BIN")
	if bin == "" {
		testenv.SkipOrFail(t, "LVSPROBE_BIN is unset (the Makefile builds bin/lvsprobe and sets it)")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("LVSPROBE_BIN: %v", err)
	}
	l := &lab{t: t, lvsprobe: bin, ipvsadm: testenv.RequireProgram(t, "ipvsadm")}
	l.ipvsadmRun("-C")
	t.Cleanup(func() { l.ipvsadmRun("-C") })
	net := testnet.New(t, testnet.Options{RealServers: n})
	for _, rs := range net.RealServers {
		l.rs = append(l.rs, rs)
		l.nginx = append(l.nginx, rs.StartNginx(t, testnet.NginxOptions{Files: map[string][]byte{"index.html": []byte("ok\n")}}))
	}
	return l
}

// requireIPVS skips when this kernel has no IPVS, as on the host (fails
// under LVSPROBE_REQUIRE_IPVS=1, as in make vmtest), and fails on any
// other error opening IPVS.
func requireIPVS(t *testing.T) {
	t.Helper()
	k, err := ipvs.NewKernel(nil)
	if err == nil {
		_ = k.Close()
		return
	}
	if !errors.Is(err, ipvs.ErrNoIPVS) {
		t.Fatalf("open IPVS: %v", err)
	}
	testenv.SkipForKernelLab(t, err)
}

// ipvsadmRun runs ipvsadm with args in the director and fails the test on
// an error.
func (l *lab) ipvsadmRun(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(l.ipvsadm, args...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("ipvsadm %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// table reads the director's IPVS table (see readTable) and fails the
// test on an error.
func (l *lab) table() table {
	l.t.Helper()
	tb, err := l.readTable(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	return tb
}

// readTable reads the director's IPVS table, with real-server addresses
// replaced by their names (RS0, RS1...) so tables read the same in every
// run. It takes two ipvsadm reads (with and without thresholds); when the
// table changes between them it reads again, a bounded number of times.
func (l *lab) readTable(ctx context.Context) (table, error) {
	var err error
	for range 20 {
		var ln, thr, again string
		if ln, err = l.ipvsadmRead(ctx, "-Ln"); err != nil {
			return nil, err
		}
		if thr, err = l.ipvsadmRead(ctx, "-Ln", "--thresholds"); err != nil {
			return nil, err
		}
		if again, err = l.ipvsadmRead(ctx, "-Ln"); err != nil {
			return nil, err
		}
		var tb, tb2 table
		if tb, err = parseTable(ln, thr); err != nil {
			err = fmt.Errorf("parse ipvsadm -Ln: %w\n%s\n%s", err, ln, thr)
			continue
		}
		if tb2, err = parseTable(again, ""); err == nil && sameMethodsWeights(tb, tb2) {
			return tb, nil
		}
		err = fmt.Errorf("the table kept changing between reads:\n%s\n%s", ln, again)
	}
	return nil, err
}

// sameMethodsWeights reports whether a and b have the same lines but for
// the thresholds.
func sameMethodsWeights(a, b table) bool {
	cut := func(l string) string {
		if f := strings.Fields(l); len(f) == 6 && f[0] == "->" {
			return strings.Join(f[:4], " ")
		}
		return l
	}
	return slices.EqualFunc(a, b, func(x, y string) bool { return cut(x) == cut(y) })
}

// ipvsadmRead runs ipvsadm with args and returns its output with the real
// servers' addresses replaced by their names.
func (l *lab) ipvsadmRead(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, l.ipvsadm, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("ipvsadm %s: %w: %s", strings.Join(args, " "), err, out)
	}
	s := string(out)
	for i, rs := range l.rs {
		s = strings.ReplaceAll(s, " "+rs.Addr.String()+":", fmt.Sprintf(" RS%d:", i))
	}
	return s, nil
}

// waitFor polls the table until ok accepts it, and fails the test with
// the last table and the logs of procs when convergeTimeout passes.
func (l *lab) waitFor(what string, ok func(table) bool, procs ...*proc) table {
	l.t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		tb := l.table()
		if ok(tb) {
			return tb
		}
		for _, p := range procs {
			if err := p.exited(); err != nil {
				l.t.Fatalf("waiting for %s: %s exited: %v\n%s", what, p.name, err, p.log())
			}
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, p := range procs {
				fmt.Fprintf(&logs, "--- %s:\n%s\n", p.name, p.log())
			}
			l.t.Fatalf("no %s within %v; table:\n%s\n%s", what, convergeTimeout, tb, logs.String())
		}
		time.Sleep(pollEvery)
	}
}

// waitTable waits until the table is want.
func (l *lab) waitTable(what string, want table, procs ...*proc) table {
	l.t.Helper()
	return l.waitFor(what+":\n"+want.String(), func(tb table) bool { return tb.String() == want.String() }, procs...)
}

// writeConfig renders testdata/name (a text/template: {{rs 0}} is the
// address of real server 0) into the test's directory and returns its
// path.
func (l *lab) writeConfig(name string) string {
	l.t.Helper()
	path := filepath.Join(l.t.TempDir(), filepath.Base(name))
	l.renderConfig(name, path)
	return path
}

// renderConfig renders testdata/name to path (replacing it atomically).
func (l *lab) renderConfig(name, path string) {
	l.t.Helper()
	tpl, err := template.New(name).Funcs(template.FuncMap{
		"rs": func(i int) string { return l.rs[i].Addr.String() },
		"seq": func(n int) []int {
			s := make([]int, n)
			for i := range s {
				s[i] = i
			}
			return s
		},
	}).ParseFiles(filepath.Join("testdata", name))
	if err != nil {
		l.t.Fatalf("parse %s: %v", name, err)
	}
	var b bytes.Buffer
	if err := tpl.ExecuteTemplate(&b, name, nil); err != nil {
		l.t.Fatalf("render %s: %v", name, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		l.t.Fatalf("write config: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.t.Fatalf("write config: %v", err)
	}
}

// proc is a program the test started in the director (lvsprobe or
// keepalived), with its output kept for failure messages.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu  sync.Mutex
	out bytes.Buffer
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// log returns what the program wrote so far.
func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// count returns how many times s occurs in the program's output.
func (p *proc) count(s string) int { return strings.Count(p.log(), s) }

// exited returns the program's exit error once it has exited, or nil
// while it runs.
func (p *proc) exited() error {
	select {
	case <-p.done:
		if p.err == nil {
			return errors.New("exit status 0")
		}
		return p.err
	default:
		return nil
	}
}

// start starts a program; it is killed on cleanup if still running.
func (l *lab) start(name string, args ...string) *proc {
	l.t.Helper()
	p := &proc{name: filepath.Base(name), cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	l.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if l.t.Failed() {
			l.t.Logf("%s output:\n%s", p.name, p.log())
		}
	})
	return p
}

// stop sends SIGTERM and waits (bounded) for the program to exit.
func (l *lab) stop(p *proc) {
	l.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		l.t.Fatalf("%s did not stop within 30s of SIGTERM\n%s", p.name, p.log())
	}
}

// startLvsprobe runs `lvsprobe run -f conf` on the kernel table. SYN
// probes are off: these tests are about the checks' semantics.
func (l *lab) startLvsprobe(conf string) *proc {
	l.t.Helper()
	return l.start(l.lvsprobe, "run", "-f", conf, "--ipvs=kernel", "--syn-probe=false")
}

// startKeepalived runs keepalived 2.2.7's checker alone on conf, with its
// pid files in a temporary directory.
func (l *lab) startKeepalived(conf string) *proc {
	l.t.Helper()
	bin := testenv.RequireProgram(l.t, "keepalived")
	dir := l.t.TempDir()
	return l.start(bin, "-n", "-l", "-C", "-f", conf,
		"-p", filepath.Join(dir, "keepalived.pid"), "-c", filepath.Join(dir, "checkers.pid"))
}

// watcher polls the table in the background and records every table in
// which a line it must keep is missing.
type watcher struct {
	cancel context.CancelFunc
	done   chan struct{}
	polls  int
	bad    []string
}

// watch starts a watcher that requires every line of keep in each table
// read, until stop. It is bounded by convergeTimeout*4.
func (l *lab) watch(keep table) *watcher {
	ctx, cancel := context.WithTimeout(context.Background(), 4*convergeTimeout)
	w := &watcher{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			tb, err := l.readTable(ctx)
			if err != nil {
				if ctx.Err() == nil {
					w.bad = append(w.bad, err.Error())
				}
				return
			}
			w.polls++
			if missing := missingLines(tb, keep); len(missing) > 0 {
				w.bad = append(w.bad, fmt.Sprintf("poll %d: missing %q in\n%s", w.polls, missing, tb))
			}
			select {
			case <-ctx.Done():
			case <-time.After(pollEvery / 2):
			}
		}
	}()
	return w
}

// stop ends the watcher and returns what it saw missing and how many
// tables it read.
func (w *watcher) stop() ([]string, int) {
	w.cancel()
	<-w.done
	return w.bad, w.polls
}

// missingLines returns the lines of keep that tb lacks. A destination
// line counts only under the service line that precedes it in keep.
func missingLines(tb, keep table) []string {
	var missing []string
	svc := ""
	for _, k := range keep {
		if !strings.HasPrefix(k, "  ->") {
			svc = k
			if tb.service(k) == nil {
				missing = append(missing, k)
			}
			continue
		}
		found := false
		for _, d := range tb.service(svc) {
			found = found || d == k
		}
		if !found {
			missing = append(missing, svc+" "+k)
		}
	}
	return missing
}
