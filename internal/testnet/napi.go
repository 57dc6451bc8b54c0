package testnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"golang.org/x/sys/unix"
)

// ThreadedNAPI gives both ends of the real server's veth their own NAPI
// instance served by a kernel thread ("napi/LINK-ID"): GRO on, TSO off
// (veth queues a packet for NAPI only when GRO could merge it, which TSO
// packets from a TCP socket are not), /sys/class/net/LINK/threaded = 1, and
// the threads at real-time priority (SCHED_FIFO 50), as softirq would be.
//
// Without it a veth transmit runs the receiving namespace's whole network
// stack synchronously in the sender's context: the real server's TCP work
// (answering a SYN, waking nginx) is charged to the process that sent the
// packet, and a connect completes inside the connect call. With it the
// sender only queues the packet, as a director does with a real NIC, and
// the other side's work runs in that side's thread. Benchmarks that
// measure the director's CPU use it.
func (rs *RealServer) ThreadedNAPI(tb testing.TB) {
	tb.Helper()
	ethtool := testenv.RequireProgram(tb, "ethtool")
	testenv.RequireProgram(tb, "unshare")
	// sysfs shows the links of the network namespace that mounted it: a
	// private mount namespace mounts it afresh for the current one.
	threaded := func(link string) []string {
		return []string{"unshare", "-m", "sh", "-c",
			fmt.Sprintf("mount -t sysfs sysfs /sys && echo 1 > /sys/class/net/%[1]s/threaded && cat /sys/class/net/%[1]s/threaded", link)}
	}
	run := func(argv []string, inRS bool) {
		var cmd *exec.Cmd
		if inRS {
			cmd = rs.Command(context.Background(), argv[0], argv[1:]...)
		} else {
			cmd = exec.Command(argv[0], argv[1:]...)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			tb.Fatalf("testnet: %s: %v: %s", strings.Join(argv, " "), err, out)
		}
		if strings.HasPrefix(argv[len(argv)-1], "mount") && strings.TrimSpace(string(out)) != "1" {
			tb.Fatalf("testnet: threaded NAPI not enabled: %s: %q", strings.Join(argv, " "), out)
		}
	}
	before := napiThreads(tb)
	run([]string{ethtool, "-K", rs.Link, "gro", "on", "tso", "off"}, false)
	run(threaded(rs.Link), false)
	rs.napiDirector = newThreads(tb, before)
	before = napiThreads(tb)
	run([]string{ethtool, "-K", "eth0", "gro", "on", "tso", "off"}, true)
	run(threaded("eth0"), true)
	rs.napiPeer = newThreads(tb, before)
	if len(rs.napiDirector) == 0 || len(rs.napiPeer) == 0 {
		tb.Fatalf("testnet: no NAPI thread appeared (director %v, real server %v)", rs.napiDirector, rs.napiPeer)
	}
	// Softirq work preempts every process; a NAPI thread at normal
	// priority instead waits its turn behind the benchmark's own load, and
	// the veth's 256-packet ring overflows (drops no real NIC would see at
	// this rate). Real-time priority gives it back softirq's precedence.
	for _, pid := range append(append([]int(nil), rs.napiDirector...), rs.napiPeer...) {
		if err := unix.SchedSetAttr(pid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 50}, 0); err != nil {
			tb.Fatalf("testnet: real-time priority for NAPI thread %d: %v", pid, err)
		}
	}
}

// NAPICPU returns the CPU time (user+system) used so far by the NAPI
// threads [RealServer.ThreadedNAPI] made: the director end's (packets the
// director receives) and the real server end's. Zero without ThreadedNAPI.
func (rs *RealServer) NAPICPU(tb testing.TB) (director, realServer time.Duration) {
	tb.Helper()
	return threadsCPU(tb, rs.napiDirector), threadsCPU(tb, rs.napiPeer)
}

// napiThreads lists the pids of the kernel's NAPI threads.
func napiThreads(tb testing.TB) map[int]bool {
	tb.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	m := map[int]bool{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && strings.HasPrefix(string(comm), "napi/") {
			m[pid] = true
		}
	}
	return m
}

// newThreads returns the NAPI threads that are not in before.
func newThreads(tb testing.TB, before map[int]bool) []int {
	var pids []int
	for pid := range napiThreads(tb) {
		if !before[pid] {
			pids = append(pids, pid)
		}
	}
	return pids
}

// threadsCPU sums utime+stime of pids (/proc/PID/stat, clock ticks of
// 1/100 s).
func threadsCPU(tb testing.TB, pids []int) time.Duration {
	tb.Helper()
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue // gone with its link
		}
		// The command name, in parentheses, may hold spaces: fields
		// count from after its closing parenthesis (utime is field 14).
		rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 13 {
			tb.Fatalf("testnet: short /proc/%d/stat", pid)
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
