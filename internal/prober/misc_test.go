package prober

import (
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// script writes an executable shell script and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// miscBlock is a MISC_CHECK block running args.
func miscBlock(timeout time.Duration, dynamic bool, args ...string) *config.Checker {
	return &config.Checker{Pos: config.Pos{File: "t.conf", Line: 7}, Type: config.MiscCheck, DelayLoop: time.Minute,
		Misc: &config.MiscOptions{Path: &config.Script{Pos: config.Pos{File: "t.conf", Line: 8}, Args: args}, Timeout: timeout, Dynamic: dynamic}}
}

func TestMiscCheck(t *testing.T) {
	testenv.RequireProgram(t, "sh")
	dir := t.TempDir()
	exit := func(code int) string { return script(t, dir, "exit"+strconv.Itoa(code), "exit "+strconv.Itoa(code)) }
	args := script(t, dir, "args", `[ "$#" = 2 ] && [ "$1" = "a b" ] && [ "$2" = '$HOME;x' ]`)
	tests := []struct {
		name    string
		args    []string
		dynamic bool
		ok      bool
		weight  WeightChange
		msg     string
	}{
		{"exit 0", []string{exit(0)}, false, true, WeightChange{}, "exit status 0; ok"},
		{"exit 1", []string{exit(1)}, false, false, WeightChange{}, "exited with status 1"},
		{"exit 5 not dynamic", []string{exit(5)}, false, false, WeightChange{}, "exited with status 5"},
		{"dynamic exit 0", []string{exit(0)}, true, true, WeightChange{Kind: WeightOffset}, "ok"},
		{"dynamic exit 1", []string{exit(1)}, true, false, WeightChange{}, "exited with status 1"},
		{"dynamic exit 2", []string{exit(2)}, true, true, WeightChange{Kind: WeightAbsolute, Value: 0}, "exit status 2; ok"},
		{"dynamic exit 12", []string{exit(12)}, true, true, WeightChange{Kind: WeightAbsolute, Value: 10}, "exit status 12; ok"},
		{"dynamic exit 255", []string{exit(255)}, true, true, WeightChange{Kind: WeightAbsolute, Value: 253}, "ok"},
		{"argv without a shell", []string{args, "a b", "$HOME;x"}, false, true, WeightChange{}, "ok"},
		{"signal", []string{script(t, dir, "selfkill", "kill -USR1 $$")}, false, false, WeightChange{}, "killed by signal 10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ck := mustChecker(t, miscBlock(5*time.Second, tt.dynamic, tt.args...), CheckerOptions{})
			res := ck.Check(context.Background())
			if res.OK != tt.ok || res.Weight != tt.weight || !strings.Contains(res.Message, tt.msg) {
				t.Fatalf("OK=%v weight %+v %q (%v); want OK=%v weight %+v containing %q", res.OK, res.Weight, res.Message, res.Err, tt.ok, tt.weight, tt.msg)
			}
		})
	}
}

// TestMiscCheckTimeout: a script that ignores SIGTERM and leaves a
// grandchild behind is killed, group and all, at misc_timeout plus the
// 2 s grace, and the check fails as timed out.
func TestMiscCheckTimeout(t *testing.T) {
	testenv.RequireProgram(t, "sh")
	testenv.RequireProgram(t, "sleep")
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild")
	s := script(t, dir, "stuck", `trap '' TERM
sleep 300 &
echo $! > `+pidFile+`
while :; do sleep 1; done`)
	ck := mustChecker(t, miscBlock(300*time.Millisecond, false, s), CheckerOptions{})
	res := within(t, ck, 300*time.Millisecond+miscTermGrace)
	if res.OK || !errors.Is(res.Err, context.DeadlineExceeded) || !strings.Contains(res.Message, "timed out after 300ms") {
		t.Fatalf("OK=%v %q (%v), want a timeout", res.OK, res.Message, res.Err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// The grandchild was SIGKILLed with its group; once its parent is
	// gone it is reaped by init (or this process, as subreaper): wait
	// for it to disappear, bounded.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			break // killed, a zombie waiting for its reaper
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still alive after the check", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A cancelled context stops a script at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res := ck.Check(ctx); res.OK || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("cancelled: OK=%v %q", res.OK, res.Message)
	}
}

// TestMiscCheckUser runs the script as another user (nobody), as the
// user line and global script_user ask.
func TestMiscCheckUser(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireProgram(t, "id")
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // the script must be reachable for nobody
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := script(t, dir, "whoami", `[ "$(id -u)" = "`+nobody.Uid+`" ]`)

	c := miscBlock(5*time.Second, false, s)
	if res := mustChecker(t, c, CheckerOptions{}).Check(context.Background()); res.OK {
		t.Fatalf("as root: passed, want the uid test to fail: %q", res.Message)
	}
	c.Misc.Path.User = "nobody"
	if res := mustChecker(t, c, CheckerOptions{}).Check(context.Background()); !res.OK {
		t.Fatalf("user nobody: %q", res.Message)
	}
	c.Misc.Path.User = ""
	if res := mustChecker(t, c, CheckerOptions{ScriptUser: "nobody"}).Check(context.Background()); !res.OK {
		t.Fatalf("script_user nobody: %q", res.Message)
	}
	c.Misc.Path.User = "no-such-user-lvsprobe"
	if _, err := NewChecker(c, CheckerOptions{}); err == nil || !strings.Contains(err.Error(), "t.conf:8") {
		t.Fatalf("unknown user: %v, want an error naming t.conf:8", err)
	}
}

// TestMiscCheckRefused: scripts keepalived would drop at start are refused
// when the checker is built, naming the misc_path line.
func TestMiscCheckRefused(t *testing.T) {
	testenv.RequireRoot(t) // the security rule applies to scripts run as root
	dir := t.TempDir()
	writable := filepath.Join(dir, "open")
	if err := os.Mkdir(writable, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(writable, 0o777); err != nil { // not the umask's
		t.Fatal(err)
	}
	unsafe := script(t, writable, "check", "exit 0")
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, []byte("exit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		opts CheckerOptions
		want string
	}{
		{"missing program", []string{filepath.Join(dir, "nope")}, CheckerOptions{}, "not found"},
		{"not executable", []string{notExec}, CheckerOptions{}, "not executable"},
		{"unsafe under enable_script_security", []string{unsafe}, CheckerOptions{ScriptSecurity: true, ScriptUser: "root"}, "unsafe"},
	}
	for _, tt := range tests {
		_, err := NewChecker(miscBlock(time.Second, false, tt.args...), tt.opts)
		if err == nil || !strings.Contains(err.Error(), "t.conf:8") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error at t.conf:8 containing %q", tt.name, err, tt.want)
		}
	}
	// without enable_script_security the unsafe script runs (keepalived warns)
	if res := mustChecker(t, miscBlock(time.Second, false, unsafe), CheckerOptions{ScriptUser: "root"}).Check(context.Background()); !res.OK {
		t.Fatalf("unsafe script without security: %q", res.Message)
	}
	// a bare name is found on PATH
	if res := mustChecker(t, miscBlock(time.Second, false, "true"), CheckerOptions{}).Check(context.Background()); !res.OK {
		t.Fatalf("true: %q", res.Message)
	}
}
