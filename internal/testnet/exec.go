package testnet

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netns"
)

// Command returns a command that runs name inside the real server's
// namespace (through nsenter). The process is killed if the test process
// dies.
func (rs *RealServer) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := append([]string{"--net=" + netnsDir + "/" + rs.Name, "--", name}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Run runs name inside the real server's namespace, fails tb when it does
// not succeed, and returns its combined output.
func (rs *RealServer) Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := rs.Command(context.Background(), name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("testnet: %s %s in %s: %v: %s", name, strings.Join(args, " "), rs.Name, err, out)
	}
	return string(out)
}

// Do runs fn on an OS thread switched into the real server's namespace:
// sockets fn creates live there and keep working from any goroutine
// afterwards. Goroutines fn starts do not run in the namespace.
func (rs *RealServer) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(rs.ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: %w", rs.Name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// The thread stays locked: the runtime destroys it when this
			// goroutine exits, so no other goroutine runs in rs's namespace.
			errc <- fmt.Errorf("leave %s: %w", rs.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen opens a listener inside the real server's namespace (for a Go
// test server); it is closed on cleanup.
func (rs *RealServer) Listen(tb testing.TB, network, addr string) net.Listener {
	tb.Helper()
	var l net.Listener
	err := rs.Do(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		tb.Fatalf("testnet: listen on %s %s in %s: %v", network, addr, rs.Name, err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	return l
}

// blackholeTable is the nftables table that drops everything a real
// server receives.
const blackholeTable = "lvsprobe_blackhole"

// BlackHole makes the real server drop every packet it receives (an
// nftables input hook with policy drop in its namespace), as a server that
// vanished without a trace would. [RealServer.Restore] undoes it; so does
// the namespace's teardown.
func (rs *RealServer) BlackHole(tb testing.TB) {
	tb.Helper()
	cmd := rs.Command(context.Background(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table inet " + blackholeTable +
		" {\n\tchain input {\n\t\ttype filter hook input priority -300; policy drop;\n\t}\n}\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("testnet: black-hole %s: %v: %s", rs.Name, err, out)
	}
}

// Restore undoes [RealServer.BlackHole].
func (rs *RealServer) Restore(tb testing.TB) {
	tb.Helper()
	rs.Run(tb, "nft", "delete", "table", "inet", blackholeTable)
}
