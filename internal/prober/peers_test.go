package prober

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// daemon is a real server program (dnsmasq, exim) run in the foreground
// inside a real-server namespace.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	out  *os.File
	// listener, when set, finds the pid of the process listening for the
	// daemon (exim's listening process is not always the one started).
	listener func(t testing.TB) int
}

// startDaemon starts name with args in rs's namespace; it is killed on
// cleanup.
func startDaemon(t testing.TB, rs *testnet.RealServer, name string, args ...string) *daemon {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), filepath.Base(name)+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{name: name, cmd: rs.Command(context.Background(), name, args...), done: make(chan struct{}), out: out}
	d.cmd.Stdout, d.cmd.Stderr = out, out
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(d.kill)
	return d
}

// kill stops the daemon and waits for it.
func (d *daemon) kill() {
	select {
	case <-d.done:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
}

// signalChild sends sig to the daemon itself (nsenter's child).
func (d *daemon) signalChild(t testing.TB, sig syscall.Signal) {
	t.Helper()
	var pid int
	if d.listener == nil {
		pid = childOf(t, d.cmd.Process.Pid)
	} else {
		pid = d.listener(t)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		t.Fatalf("signal %s (pid %d): %v", d.name, pid, err)
	}
}

// childOf returns the first child of pid (nsenter execs... or forks the
// program; either way the program is pid or its only child).
func childOf(t testing.TB, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatal(err)
	}
	var child int
	if _, err := fmt.Sscan(string(b), &child); err != nil {
		return pid
	}
	return child
}

// eventually runs ck until its outcome is ok, at most n times spaced by
// gap: for waiting on a daemon to come up (its readiness is the check
// itself) or a fault to be seen. It returns the last result.
func eventually(t testing.TB, ck Checker, ok bool, n int, gap time.Duration) Result {
	t.Helper()
	var res Result
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res = ck.Check(ctx)
		cancel()
		if res.OK == ok {
			return res
		}
		if i < n-1 {
			time.Sleep(gap)
		}
	}
	t.Fatalf("%s: OK=%v after %d attempts, want %v: %s", ck, res.OK, n, ok, res.Message)
	return res
}

// udpEcho is a Go UDP server in a real-server namespace whose answer can
// be changed: echo, a fixed reply, or silence.
type udpEcho struct {
	pc    net.PacketConn
	mode  atomic.Value // string: "echo", "silent" or a fixed reply
	count atomic.Int64
}

func startUDPEcho(t testing.TB, rs *testnet.RealServer, port int) *udpEcho {
	t.Helper()
	u := &udpEcho{}
	u.mode.Store("echo")
	err := rs.Do(func() error {
		var err error
		u.pc, err = net.ListenPacket("udp", fmt.Sprintf("%s:%d", rs.Addr, port))
		return err
	})
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	t.Cleanup(func() { _ = u.pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := u.pc.ReadFrom(buf)
			if err != nil {
				return
			}
			u.count.Add(1)
			switch m := u.mode.Load().(string); m {
			case "echo":
				_, _ = u.pc.WriteTo(buf[:n], from)
			case "silent":
			default:
				_, _ = u.pc.WriteTo([]byte(m), from)
			}
		}
	}()
	return u
}

// execIP runs ip(8) in the director's namespace.
func execIP(args ...string) ([]byte, error) {
	return exec.Command("ip", args...).CombinedOutput()
}

// listenerPID returns the pid of the process listening on TCP port in
// rs's namespace (ss -ltnp), or 0.
func listenerPID(t testing.TB, rs *testnet.RealServer, port int) int {
	t.Helper()
	out := rs.Run(t, "ss", "-Hltnp", fmt.Sprintf("sport = :%d", port))
	i := strings.Index(out, "pid=")
	if i < 0 {
		return 0
	}
	var pid int
	if _, err := fmt.Sscanf(out[i:], "pid=%d", &pid); err != nil {
		return 0
	}
	return pid
}
