package prober

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/notify"
)

// miscTermGrace is how long a timed-out script has between SIGTERM and
// SIGKILL, as keepalived's misc_check_child_thread gives it.
const miscTermGrace = 2 * time.Second

// miscChecker is MISC_CHECK: misc_path is run (argv as keepalived splits
// it, never through a shell) in its own process group, with stdin, stdout
// and stderr on /dev/null, as the script user. Exit status 0 passes and
// any other fails; with misc_dynamic, 2..255 also pass and ask for the
// weight status-2 (0..253), 0 for the configured weight and 1 fails.
// At misc_timeout (delay_loop of the virtual server when unset) the
// process group gets SIGTERM, 2 s later SIGKILL; a timed-out script fails.
// The script is checked when the checker is built, as keepalived checks it
// at start (notify.ResolveScript): a missing or non-executable program, an
// unknown user, or an unsafe path under enable_script_security is an
// error naming the misc_path line, where keepalived drops the checker.
type miscChecker struct {
	path    string              // the resolved program
	args    []string            // argv, argv[0] as written
	cred    *syscall.Credential // nil: run as lvsprobe itself
	who     string              // uid:gid, for Key
	timeout time.Duration
	dynamic bool
}

func newMiscChecker(c *config.Checker, opts CheckerOptions) (Checker, error) {
	m := c.Misc
	if m == nil || m.Path == nil || len(m.Path.Args) == 0 {
		return nil, fmt.Errorf("%s MISC_CHECK: no misc_path: %w", c.Pos, errConfig)
	}
	g := config.Global{ScriptUser: opts.ScriptUser, ScriptGroup: opts.ScriptGroup, EnableScriptSecurity: opts.ScriptSecurity}
	cmd, err := notify.ResolveScript(m.Path, g, os.Getenv("PATH"), func(string) {})
	if err != nil {
		return nil, fmt.Errorf("%s MISC_CHECK %s: %w", m.Path.Pos, m.Path.Args[0], err)
	}
	var cred *syscall.Credential
	if euid := os.Geteuid(); euid == 0 || int(cmd.As.UID) != euid || int(cmd.As.GID) != os.Getegid() {
		// keepalived's set_script_env: the user, its group, no supplementary groups
		cred = &syscall.Credential{Uid: cmd.As.UID, Gid: cmd.As.GID, Groups: []uint32{cmd.As.GID}}
	}
	t := m.Timeout
	if t <= 0 {
		t = c.DelayLoop
	}
	if t <= 0 {
		t = config.DefaultDelayLoop
	}
	return &miscChecker{path: cmd.Path, args: append([]string(nil), m.Path.Args...), cred: cred,
		who: fmt.Sprintf("%d:%d", cmd.As.UID, cmd.As.GID), timeout: t, dynamic: m.Dynamic}, nil
}

// attemptTimeout is the bound of one run: misc_timeout.
func (m *miscChecker) attemptTimeout() time.Duration { return m.timeout }

// Check runs the script once.
func (m *miscChecker) Check(ctx context.Context) Result {
	r := newReport(m.String())
	cmd := &exec.Cmd{Path: m.path, Args: m.args, Dir: "/"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: m.cred, Pdeathsig: syscall.SIGKILL}
	// notify.StartCmd: no inherited capabilities, and the parent-death
	// signal tied to a thread that lives as long as the script.
	done, err := notify.StartCmd(cmd)
	if err != nil {
		return r.fail(fmt.Errorf("start: %w", err))
	}
	pgid := cmd.Process.Pid

	timer := time.NewTimer(m.timeout)
	defer timer.Stop()
	timedOut := false
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
		return r.fail(fmt.Errorf("cancelled: %w", ctx.Err()))
	case <-timer.C:
		timedOut = true
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		timer.Reset(miscTermGrace)
		select {
		case err = <-done:
		case <-timer.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			err = <-done
		case <-ctx.Done():
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
			return r.fail(fmt.Errorf("cancelled: %w", ctx.Err()))
		}
	}
	// Whatever the script left behind in its group goes with it (keepalived
	// kills the group after a script it terminated; lvsprobe always does, so
	// a check never leaks processes).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)

	if timedOut {
		return r.fail(fmt.Errorf("timed out after %v: %w", m.timeout, context.DeadlineExceeded))
	}
	status, sig := exitOf(cmd.ProcessState, err)
	if sig != 0 {
		return r.fail(fmt.Errorf("killed by signal %d (%s)", int(sig), sig))
	}
	return m.verdict(r, status)
}

// verdict maps an exit status to a result.
func (m *miscChecker) verdict(r *report, status int) Result {
	r.step("exit status %d", status)
	switch {
	case status == 0:
		res := r.ok()
		if m.dynamic {
			// misc_dynamic with status 0: the configured weight (cur_weight 0).
			res.Weight = WeightChange{Kind: WeightOffset, Value: 0}
		}
		return res
	case m.dynamic && status >= 2 && status <= 255:
		res := r.ok()
		res.Weight = WeightChange{Kind: WeightAbsolute, Value: status - 2}
		return res
	default:
		return r.fail(fmt.Errorf("exited with status %d: %w", status, errScriptFailed))
	}
}

// errScriptFailed is a MISC_CHECK script's failing exit status.
var errScriptFailed = errors.New("script failed")

// exitOf returns the exit status, or the signal that ended the process.
func exitOf(ps *os.ProcessState, err error) (int, syscall.Signal) {
	if ps == nil {
		return -1, 0
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal()
	}
	_ = err // an exit status other than 0 comes back as *exec.ExitError too
	return ps.ExitCode(), 0
}

// Key identifies the check: the argv, the user, the timeout and dynamic.
func (m *miscChecker) Key() string {
	return fmt.Sprintf("%s %s %q user %s timeout %v dynamic %t", config.MiscCheck, m.path, m.args, m.who, m.timeout, m.dynamic)
}

// String names the check: "MISC_CHECK /usr/local/bin/check arg".
func (m *miscChecker) String() string {
	return string(config.MiscCheck) + " " + strings.Join(m.args, " ")
}
