package testnet

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

// envInner marks a test binary re-executed inside its director namespace;
// its value is the prefix of every namespace the process creates.
const envInner = "LVSPROBE_TESTNET_PREFIX"

// netnsDir is where `ip netns` keeps its named namespaces.
const netnsDir = "/run/netns"

// Main is meant for TestMain. Run as root, it re-executes the test binary
// inside a fresh network namespace (loopback up, no other link, no route),
// which becomes the director of every topology [New] builds, waits for it,
// removes any namespace the child left behind and exits with its status.
// Inside that namespace, or when not root, it just runs m (tests that need
// the topology then skip through [New]).
func Main(m *testing.M) {
	if prefix := os.Getenv(envInner); prefix != "" {
		if err := setupDirector(); err != nil {
			fmt.Fprintf(os.Stderr, "testnet: %v\n", err)
			os.Exit(1)
		}
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	os.Exit(reexec())
}

// Inside reports whether the process runs in a director namespace made by
// [Main].
func Inside() bool { return os.Getenv(envInner) != "" }

// setupDirector brings loopback up in the fresh director namespace.
func setupDirector() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// reexec runs this test binary again in a new network namespace and
// returns its exit code.
func reexec() int {
	prefix := fmt.Sprintf("lvp%d", os.Getpid())
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testnet: find test binary: %v\n", err)
		return 1
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), envInner+"="+prefix)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL,
	}
	sigc := make(chan os.Signal, 4)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "testnet: start test binary in a new network namespace: %v\n", err)
		return 1
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigc:
				_ = cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err = cmd.Wait()
	close(done)
	signal.Stop(sigc)
	removeLeftovers(prefix)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.ExitCode() >= 0 {
			return ee.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "testnet: test binary: %v\n", err)
		return 1
	default:
		fmt.Fprintf(os.Stderr, "testnet: test binary: %v\n", err)
		return 1
	}
}

// removeLeftovers deletes every named namespace with prefix: the ones a
// crashed or killed test process could not clean up itself.
func removeLeftovers(prefix string) {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			if err := deleteNamed(e.Name()); err != nil {
				fmt.Fprintf(os.Stderr, "testnet: remove leftover namespace: %v\n", err)
			}
		}
	}
}

// deleteNamed removes a named namespace (killing nothing: processes still
// inside keep it alive until they exit).
func deleteNamed(name string) error {
	out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip netns delete %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}
