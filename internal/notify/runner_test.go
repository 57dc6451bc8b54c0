package notify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// waitFor bounds every wait on an event in these tests.
const waitFor = 10 * time.Second

// lab is a temp directory with a FIFO the test scripts report through.
type lab struct {
	t    *testing.T
	dir  string
	fifo string
	r    *bufio.Reader
	f    *os.File
}

// newLab makes a directory every user can reach (scripts may run as
// nobody) holding a FIFO opened for reading.
func newLab(t *testing.T) *lab {
	t.Helper()
	testenv.RequireRoot(t) // scripts run as other users; files owned by root
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // TempDir makes both 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(dir, "events")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	// O_RDWR: opening does not wait for a writer, and EOF never comes
	// between scripts.
	f, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &lab{t: t, dir: dir, fifo: fifo, r: bufio.NewReader(f), f: f}
}

// script writes an executable script named name whose body follows a
// #!/bin/sh line; @FIFO@ in body is the FIFO's path.
func (l *lab) script(name, body string, mode os.FileMode) string {
	l.t.Helper()
	p := filepath.Join(l.dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+strings.ReplaceAll(body, "@FIFO@", l.fifo)+"\n"), mode); err != nil {
		l.t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		l.t.Fatal(err)
	}
	return p
}

// line returns the next line a script wrote to the FIFO.
func (l *lab) line() string {
	l.t.Helper()
	return l.lineT(l.t)
}

// lineT is line for a subtest t.
func (l *lab) lineT(t *testing.T) string {
	t.Helper()
	if err := l.f.SetReadDeadline(time.Now().Add(waitFor)); err != nil {
		t.Fatal(err)
	}
	s, err := l.r.ReadString('\n')
	if err != nil {
		t.Fatalf("no line from a script: %v", err)
	}
	return strings.TrimSuffix(s, "\n")
}

// none asserts no script writes a line within d (a negative check: the
// wait is the assertion, bounded).
func (l *lab) none(d time.Duration) {
	l.t.Helper()
	if err := l.f.SetReadDeadline(time.Now().Add(d)); err != nil {
		l.t.Fatal(err)
	}
	if s, err := l.r.ReadString('\n'); err == nil {
		l.t.Fatalf("unexpected script output %q", s)
	}
}

// parse parses a keepalived.conf.
func parse(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.conf", []byte(src), config.LoadOptions{})
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, src)
	}
	return cfg
}

// conf is a virtual server with one real server; globals go in
// global_defs, vs and rs lines in the blocks.
func conf(globals, vs, rs string) string {
	return "global_defs {\n" + globals + "\n}\nvirtual_server 198.18.0.1 80 {\n lb_kind NAT\n protocol TCP\n" + vs +
		"\n real_server 198.18.1.1 80 {\n" + rs + "\n  TCP_CHECK {\n  }\n }\n}\n"
}

var rsKey = config.RealServerKey{VirtualServer: "TCP 198.18.0.1:80", Addr: netip.MustParseAddr("198.18.1.1"), Port: 80}

// start runs r until the test ends.
func start(t *testing.T, r *Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// waitStats waits until cond holds for r's counters.
func waitStats(t *testing.T, r *Runner, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		st := r.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never matched: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func vsID(t *testing.T, cfg *config.Config) string {
	t.Helper()
	id := cfg.VirtualServers[0].ID()
	if id != rsKey.VirtualServer {
		t.Fatalf("virtual server id %q, test key %q", id, rsKey.VirtualServer)
	}
	return id
}

func TestRealServerNotifies(t *testing.T) {
	l := newLab(t)
	s := l.script("n", `echo "$0|$#|$1|$2" >@FIFO@`, 0o755)
	cfg := parse(t, conf("enable_script_security\nscript_user root", "",
		fmt.Sprintf("  notify_up \"%s up 'a b'\"\n  notify_down \"%s down\"", s, s)))
	vsID(t, cfg)
	r := New(Options{})
	if err := r.Update(cfg); err != nil {
		t.Fatal(err)
	}
	start(t, r)

	r.RealServer(rsKey, true) // the first verdict agrees with the start state: nothing to run
	r.RealServer(rsKey, false)
	if got, want := l.line(), s+"|1|down|"; got != want {
		t.Errorf("notify_down argv %q, want %q", got, want)
	}
	r.RealServer(rsKey, false) // repeated: nothing
	r.RealServer(rsKey, true)
	if got, want := l.line(), s+"|2|up|a b"; got != want {
		t.Errorf("notify_up argv %q, want %q", got, want)
	}
	other := rsKey
	other.Port = 81
	r.RealServer(other, false) // not in the configuration
	st := waitStats(t, r, func(s Stats) bool { return s.Succeeded == 2 })
	if st.Failed+st.TimedOut+st.Dropped != 0 || st.Refused != 0 {
		t.Errorf("stats %+v", st)
	}
	l.none(100 * time.Millisecond)
}

func TestAlphaStartsDown(t *testing.T) {
	l := newLab(t)
	s := l.script("n", `echo "$1" >@FIFO@`, 0o755)
	src := conf("script_user root", "", fmt.Sprintf("  notify_up \"%s up\"\n  notify_down \"%s down\"", s, s))
	src = strings.Replace(src, "TCP_CHECK {\n", "TCP_CHECK {\n   alpha\n", 1)
	r := New(Options{})
	if err := r.Update(parse(t, src)); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	r.RealServer(rsKey, false) // alpha: starts down, so no change
	r.RealServer(rsKey, true)
	if got := l.line(); got != "up" {
		t.Errorf("got %q, want up", got)
	}
}

func TestQuorumNotifies(t *testing.T) {
	l := newLab(t)
	s := l.script("q", `echo "quorum $1" >@FIFO@`, 0o755)
	cfg := parse(t, conf("script_user root", fmt.Sprintf(" quorum_up \"%s up\"\n quorum_down \"%s down\"", s, s), ""))
	r := New(Options{})
	if err := r.Update(cfg); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	r.Quorum(vsID(t, cfg), true)
	r.Quorum(vsID(t, cfg), false)
	r.Quorum("TCP 198.18.0.9:80", false) // unknown virtual server
	for _, want := range []string{"quorum up", "quorum down"} {
		if got := l.line(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestNeverAShell: the words of the command reach the program as they
// are; nothing in them is interpreted.
func TestNeverAShell(t *testing.T) {
	l := newLab(t)
	s := l.script("n", `printf '%s|' "$@" >@FIFO@; echo >@FIFO@`, 0o755)
	marker := filepath.Join(l.dir, "pwned")
	cfg := parse(t, conf("script_user root", "",
		fmt.Sprintf(`  notify_down "%s '$(touch %s)' ;touch %s \`+"`"+`id\`+"`"+` *"`, s, marker, marker)))
	r := New(Options{})
	if err := r.Update(cfg); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	r.RealServer(rsKey, false)
	want := "$(touch " + marker + ")|;touch|" + marker + "|`id`|*|"
	if got := l.line(); got != want {
		t.Errorf("argv %q, want %q", got, want)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a shell ran the words: %v", err)
	}
}

// TestNoShebang: a script without #! runs as a shell script file, as
// execvp would run it.
func TestNoShebang(t *testing.T) {
	l := newLab(t)
	p := filepath.Join(l.dir, "plain")
	if err := os.WriteFile(p, []byte("echo \"plain $1\" >"+l.fifo+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := New(Options{})
	if err := r.Update(parse(t, conf("script_user root", "", fmt.Sprintf("  notify_down \"%s x\"", p)))); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	r.RealServer(rsKey, false)
	if got := l.line(); got != "plain x" {
		t.Errorf("got %q", got)
	}
}

// TestTimeoutKillsProcessGroup: a hanging script and the child it started
// are killed at the timeout, and the next notification still runs.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	l := newLab(t)
	hang := l.script("hang", `sleep 300 &
echo "$!" >@FIFO@
trap '' TERM
wait`, 0o755)
	up := l.script("up", `echo up >@FIFO@`, 0o755)
	r := New(Options{Timeout: 300 * time.Millisecond, Grace: 200 * time.Millisecond, Workers: 1})
	if err := r.Update(parse(t, conf("script_user root", "", fmt.Sprintf("  notify_down %s\n  notify_up %s", hang, up)))); err != nil {
		t.Fatal(err)
	}
	start(t, r)
	r.RealServer(rsKey, false)
	child, err := strconv.Atoi(l.line())
	if err != nil {
		t.Fatal(err)
	}
	r.RealServer(rsKey, true) // queued behind the hanging script, same worker
	if got := l.line(); got != "up" {
		t.Fatalf("got %q", got)
	}
	st := waitStats(t, r, func(s Stats) bool { return s.Succeeded == 1 })
	if st.TimedOut != 1 {
		t.Errorf("stats %+v, want one timeout", st)
	}
	// The background sleep was in the script's process group: gone (or a
	// zombie of init, never running).
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child)); err == nil {
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] != "Z" {
			t.Errorf("child %d of the killed script still runs: %s", child, b)
		}
	}
}

func TestQueueFullDrops(t *testing.T) {
	l := newLab(t)
	hang := l.script("hang", `echo started >@FIFO@; exec sleep 300`, 0o755)
	r := New(Options{Workers: 1, QueueLen: 1, Timeout: time.Minute, Grace: 100 * time.Millisecond})
	cfg := parse(t, conf("script_user root", fmt.Sprintf(" quorum_up %s\n quorum_down %s", hang, hang), ""))
	if err := r.Update(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	id := vsID(t, cfg)
	r.Quorum(id, true)
	if l.line() != "started" { // the worker is busy now
		t.Fatal("no start")
	}
	r.Quorum(id, false) // waits in the queue
	r.Quorum(id, true)  // no room
	if st := r.Stats(); st.Dropped != 1 || st.Queued != 1 {
		t.Errorf("stats %+v, want 1 dropped, 1 queued", st)
	}
	cancel() // kills the running one, drops the waiting one
	<-done
	if st := r.Stats(); st.Dropped != 2 || st.Failed != 1 || st.Queued != 0 {
		t.Errorf("after stop: %+v", st)
	}
}
