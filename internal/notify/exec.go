package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrTimeout is returned by a run that outlived its timeout and was killed.
var ErrTimeout = errors.New("script timed out")

// outputCap bounds how much of a script's output is kept for the log.
const outputCap = 4 << 10

// capped keeps the first outputCap bytes written to it.
type capped struct{ bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := outputCap - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// execOptions tune one run.
type execOptions struct {
	timeout time.Duration // SIGTERM to the process group after this
	grace   time.Duration // SIGKILL this long after SIGTERM
}

// result is the outcome of one run.
type result struct {
	err      error  // nil: exit status 0
	output   []byte // stdout and stderr, capped
	duration time.Duration
}

// runCommand runs c in its own process group, as c.As, with stdin from
// /dev/null, in "/", until it exits or the timeout kills its process
// group. ctx cancelled also kills it.
func runCommand(ctx context.Context, c *Command, o execOptions) result {
	start := time.Now()
	var out capped
	argv := c.Args
	// stdin is /dev/null: exec.Cmd's nil Stdin.
	cmd, done, err := startCommand(c.Path, argv, c.As, &out, o.grace)
	if errors.Is(err, syscall.ENOEXEC) {
		// No #! line: what execvp does — the file is a shell script. The
		// path is the shell's script operand, never a command string.
		cmd, done, err = startCommand("/bin/sh", append([]string{"/bin/sh"}, argv...), c.As, &out, o.grace)
	}
	if err != nil {
		return result{err: fmt.Errorf("start %s: %w", c.Path, err), duration: time.Since(start)}
	}
	timer := time.NewTimer(o.timeout)
	defer timer.Stop()
	var waitErr, why error
	select {
	case waitErr = <-done:
	case <-timer.C:
		why = fmt.Errorf("%w after %v", ErrTimeout, o.timeout)
	case <-ctx.Done():
		why = fmt.Errorf("stopped: %w", ctx.Err())
	}
	if why != nil {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(o.grace):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		// Children that outlived the leader go too.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		waitErr = why
	}
	return result{err: waitErr, output: out.Bytes(), duration: time.Since(start)}
}

// startCommand starts path with argv as id, in a new process group, and
// returns the channel its Wait result arrives on (see StartCmd).
func startCommand(path string, argv []string, id Identity, out *capped, waitDelay time.Duration) (*exec.Cmd, <-chan error, error) {
	cmd := &exec.Cmd{Path: path, Args: argv, Dir: "/", Stdout: out, Stderr: out, WaitDelay: waitDelay}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if euid := uint32(os.Geteuid()); euid == 0 || id.UID != euid || id.GID != uint32(os.Getegid()) {
		// keepalived's set_script_env: the user, its group, no
		// supplementary groups.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: id.UID, Gid: id.GID, Groups: []uint32{id.GID}}
	}
	done, err := StartCmd(cmd)
	if err != nil {
		return nil, nil, err
	}
	return cmd, done, nil
}

// StartCmd starts cmd with no ambient or inheritable capabilities, and
// returns the channel cmd.Wait's result arrives on (the caller must not
// call Wait itself). A daemon given capabilities by systemd
// (AmbientCapabilities=) must not pass them on to the scripts it runs.
// Capability sets belong to a thread, so the fork happens on a locked
// thread that clears them (dropInheritable); that thread also waits for
// the child (a parent-death signal follows the thread that forked) and is
// then thrown away (its goroutine exits locked). MISC_CHECK uses it too.
func StartCmd(cmd *exec.Cmd) (<-chan error, error) {
	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := dropInheritable(); err != nil {
			started <- err
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

// dropInheritable clears the calling thread's ambient and inheritable
// capability sets, keeping its permitted and effective ones (the child
// then needs them to change user). The thread must be locked and never
// reused.
func dropInheritable() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	if data[0].Inheritable == 0 && data[1].Inheritable == 0 {
		return nil
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clear inheritable capabilities: %w", err)
	}
	return nil
}
