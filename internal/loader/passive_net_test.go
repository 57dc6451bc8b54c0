package loader

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
	"github.com/vishvananda/netlink"
)

// envServe makes the test binary a TCP server (TestPassiveHelperServer)
// listening on the address it names.
const envServe = "LVSPROBE_PASSIVE_SERVE"

// TestPassiveHelperServer is not a test: run with envServe set (in a real
// server's namespace), it accepts connections and never reads from them,
// until it is killed.
func TestPassiveHelperServer(t *testing.T) {
	addr := os.Getenv(envServe)
	if addr == "" {
		t.Skip("helper process only")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		heldConns = append(heldConns, c)
	}
}

// heldConns keeps the helper server's connections open, never read.
var heldConns []net.Conn

// startServer runs TestPassiveHelperServer in rs's namespace on port and
// returns it once it listens.
func startServer(t *testing.T, rs *testnet.RealServer, port uint16) *exec.Cmd {
	t.Helper()
	cmd := rs.Command(context.Background(), os.Args[0], "-test.run=^TestPassiveHelperServer$")
	cmd.Env = append(os.Environ(), envServe+"="+netip.AddrPortFrom(rs.Addr, port).String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("helper server: %q, %v", line, err)
	}
	go io.Copy(io.Discard, out)
	return cmd
}

// routed builds client and real-server namespaces behind the director
// (this process) and attaches p to the director's link to the real
// server.
func routed(t *testing.T, p *Passive) (client, rs *testnet.RealServer) {
	t.Helper()
	n := testnet.New(t, testnet.Options{RealServers: 2})
	n.Route(t)
	client, rs = n.RealServers[0], n.RealServers[1]
	l, err := netlink.LinkByName(rs.Link)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Attach(l.Attrs().Index); err != nil {
		t.Fatalf("attach: %v", err)
	}
	return client, rs
}

// routedRun is routed, with rs's port as p's one real server and p
// running until the test ends.
func routedRun(t *testing.T, p *Passive, port uint16) (client, rs *testnet.RealServer, target netip.AddrPort) {
	t.Helper()
	client, rs = routed(t, p)
	target = netip.AddrPortFrom(rs.Addr, port)
	if err := p.SetRealServers([]netip.AddrPort{target}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go p.Run(ctx)
	return client, rs, target
}

// dial connects from the client's namespace.
func dial(client *testnet.RealServer, to netip.AddrPort, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := client.Do(func() error {
		var err error
		c, err = net.DialTimeout("tcp", to.String(), timeout)
		return err
	})
	return c, err
}

// waitEvent waits for an event of kind for rs.
func waitEvent(t *testing.T, p *Passive, kind EventKind, rs netip.AddrPort) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case e := <-p.Events():
			if e.Kind == kind && e.RealServer == rs {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event for %s", kind, rs)
		}
	}
}

// TestPassiveKilledServer: a Go server in the real server's namespace
// serves clients through the director; it is killed, and the RSTs its
// kernel sends cross the director's link: Go gets a reset event, and the
// counters show the resets and the refused connects that follow.
func TestPassiveKilledServer(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, PollInterval: 10 * time.Millisecond, HandshakeSample: 1})
	client, rs := routed(t, p)
	target := netip.AddrPortFrom(rs.Addr, 8080)
	if err := p.SetRealServers([]netip.AddrPort{target}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-runErr; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	}()

	srv := startServer(t, rs, 8080)
	for range 5 {
		c, err := dial(client, target, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("unread")); err != nil {
			t.Fatal(err)
		}
	}
	before := counters(t, p, target)
	if before.SYNs != 5 || before.SYNACKs != 5 || before.Resets != 0 || before.Latency.Count() != 5 {
		t.Fatalf("before the kill: %+v", before)
	}
	if err := srv.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	srv.Wait() // gone, and with it every socket it had
	e := waitEvent(t, p, EventReset, target)
	if e.KtimeNs == 0 || e.KtimeNs > Ktime() {
		t.Errorf("event time %d", e.KtimeNs)
	}
	// Connects now are refused; the RST crossed the link before the
	// client saw it.
	if _, err := dial(client, target, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after kill = %v, want refused", err)
	}
	after := counters(t, p, target)
	if after.Resets < 5+1 || after.Refused != 1 {
		t.Errorf("after the kill: %+v (want >= 6 resets, 1 refused)", after)
	}
	// And a delta reaches the channel with the resets.
	deadline := time.After(10 * time.Second)
	var resets uint64
	for resets < 6 {
		select {
		case ds := <-p.Deltas():
			for _, d := range ds {
				if d.RealServer == target {
					resets += d.Clients.Resets
					if d.Clients.Resets > 0 && d.ResetRate() <= 0 {
						t.Errorf("reset rate %v for %+v", d.ResetRate(), d)
					}
				}
			}
		case <-deadline:
			t.Fatalf("deltas carried %d resets, want 6", resets)
		}
	}
}

// TestPassiveDirectReturn: in a DR-like topology the real server's replies
// bypass the director, so it sees SYNs and nothing back. While the real
// server answers, no SYN is retransmitted; once it drops everything, the
// clients' SYN retransmissions are counted and reported at once.
func TestPassiveDirectReturn(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true})
	client, rs, target := routedRun(t, p, 8080)
	rs.DirectReturn(t, client)

	startServer(t, rs, 8080)
	// On a loaded machine a SYN-ACK can take longer than the client's
	// 1 s RTO: the client's own count of SYN retransmissions says how
	// many the programs must have seen.
	before := synRetrans(t, client)
	for range 3 {
		c, err := dial(client, target, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	retrans := synRetrans(t, client) - before
	healthy := counters(t, p, target)
	if healthy.SYNs != 3+retrans || healthy.SYNRetransmits != retrans || healthy.SYNACKs != 0 {
		t.Fatalf("healthy DR: %+v (want 3 SYNs and the client's %d retransmissions, no SYN-ACK seen)", healthy, retrans)
	}
	rs.BlackHole(t)
	// The client's first SYN retransmission comes after its 1 s RTO.
	done := make(chan error, 1)
	go func() {
		_, err := dial(client, target, 1500*time.Millisecond)
		done <- err
	}()
	waitEvent(t, p, EventSYNRetransmit, target)
	if err := <-done; err == nil {
		t.Fatal("dial to a black hole succeeded")
	}
	got := counters(t, p, target)
	if got.SYNRetransmits < 1 || got.SYNs < 5 {
		t.Errorf("dead DR: %+v (want a retransmission)", got)
	}
	d := Delta{Interval: time.Second, Clients: got.sub(healthy)}
	if r := d.UnansweredRatio(); r < 0.4 {
		t.Errorf("unanswered ratio %v", r)
	}
}

// synRetrans returns the client namespace's count of SYNs retransmitted
// (TcpExt TCPSynRetrans).
func synRetrans(t *testing.T, client *testnet.RealServer) uint64 {
	t.Helper()
	var n uint64
	err := client.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/netstat")
		if err != nil {
			return err
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i+1 < len(lines); i += 2 {
			names, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
			if len(names) == 0 || names[0] != "TcpExt:" || len(vals) != len(names) {
				continue
			}
			for j, name := range names {
				if name == "TCPSynRetrans" {
					n, err = strconv.ParseUint(vals[j], 10, 64)
					return err
				}
			}
		}
		return errors.New("no TcpExt TCPSynRetrans")
	})
	if err != nil {
		t.Fatalf("client SYN retransmissions: %v", err)
	}
	return n
}

// TestPassiveOwnConnections: the tracepoints see the director's own
// connects to a real server - established (timed), refused, reset, SYNs
// retransmitted into a black hole - and nothing of connects elsewhere.
func TestPassiveOwnConnections(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{})
	n := testnet.New(t, testnet.Options{})
	rs := n.RealServers[0]
	open := netip.AddrPortFrom(rs.Addr, 8080)
	closed := netip.AddrPortFrom(rs.Addr, 8081)
	if err := p.SetRealServers([]netip.AddrPort{open, closed}); err != nil {
		t.Fatal(err)
	}
	l := rs.Listen(t, "tcp", open.String())
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.DialTimeout("tcp", open.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-accepted
	sc.(*net.TCPConn).SetLinger(0)
	sc.Close() // a RST to the director's socket
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after the server's reset = %v", err)
	}
	if _, err := net.DialTimeout("tcp", closed.String(), 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial closed port = %v", err)
	}
	// Elsewhere: not counted.
	elsewhere := netip.AddrPortFrom(rs.Addr, 8082)
	if _, err := net.DialTimeout("tcp", elsewhere.String(), 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s = %v", elsewhere, err)
	}
	// Another namespace's socket to the same address and port is not the
	// director's own: the tracepoints fire for the whole kernel.
	err = rs.Do(func() error {
		_, err := net.DialTimeout("tcp", closed.String(), 5*time.Second)
		return err
	})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s from the real server's namespace = %v", closed, err)
	}
	_, own, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	o, oc := own[open], own[closed]
	if _, ok := own[elsewhere]; ok || len(own) != 2 {
		t.Errorf("own counters for %v, want the two real servers only", own)
	}
	if o.Connects != 1 || o.Established != 1 || o.Resets != 1 || o.Latency.Count() != 1 || o.Refused != 0 {
		t.Errorf("open port: %+v", o)
	}
	if oc.Connects != 1 || oc.Refused != 1 || oc.Failed != 1 || oc.Established != 0 {
		t.Errorf("closed port: %+v", oc)
	}
	// A black hole: the connect's SYN is retransmitted (after 1 s), then
	// the connect gives up.
	rs.BlackHole(t)
	if _, err := net.DialTimeout("tcp", closed.String(), 1500*time.Millisecond); err == nil {
		t.Fatal("dial into a black hole succeeded")
	}
	_, own, err = p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if got := own[closed]; got.SYNRetransmits < 1 || got.Retransmits < got.SYNRetransmits || got.Connects != 2 || got.Failed != 2 {
		t.Errorf("black-holed connect: %+v (want a SYN retransmission, 2 connects, 2 failed)", got)
	}
}

// envAttach makes the test binary attach the passive programs with
// clsact to the link it names and wait to be killed
// (TestPassiveHelperAttach).
const envAttach = "LVSPROBE_PASSIVE_ATTACH"

// TestPassiveHelperAttach is not a test: run with envAttach set, it
// attaches through clsact, says so, and waits to be killed.
func TestPassiveHelperAttach(t *testing.T) {
	name := os.Getenv(envAttach)
	if name == "" {
		t.Skip("helper process only")
	}
	p, err := LoadPassive(PassiveOptions{ForceClsact: true, NoTracepoints: true})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	l, err := netlink.LinkByName(name)
	if err == nil {
		_, err = p.Attach(l.Attrs().Index)
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	select {}
}

// passiveFilters counts the passive clsact filters on both hooks of l.
func passiveFilters(t *testing.T, l netlink.Link) int {
	t.Helper()
	n := 0
	for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
		fs, err := netlink.FilterList(l, parent)
		if err != nil {
			continue // no clsact
		}
		for _, f := range fs {
			if bf, ok := f.(*netlink.BpfFilter); ok && len(bf.Name) >= len(passiveFilterPrefix) && bf.Name[:len(passiveFilterPrefix)] == passiveFilterPrefix {
				n++
			}
		}
	}
	return n
}

// TestPassiveAttachDetach: TCX and clsact attachments carry traffic and
// leave nothing behind after Close; the clsact filters of a process killed
// with SIGKILL are removed by the next one's Attach.
func TestPassiveAttachDetach(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("clsact=%v", force), func(t *testing.T) {
			p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, ForceClsact: force})
			client, rs := routed(t, p)
			target := netip.AddrPortFrom(rs.Addr, 9)
			if err := p.SetRealServers([]netip.AddrPort{target}); err != nil {
				t.Fatal(err)
			}
			l, _ := netlink.LinkByName(rs.Link)
			if how, _ := p.Attach(l.Attrs().Index); (how == "clsact") != (force || !kernelAtLeast(t, 6, 6)) {
				t.Errorf("attached with %s", how)
			}
			if force {
				if n := passiveFilters(t, l); n != 2 {
					t.Errorf("%d passive filters, want 2", n)
				}
			}
			// Both hooks see traffic: a refused connect is a SYN out, a RST in.
			if _, err := dial(client, target, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("dial = %v", err)
			}
			if c := counters(t, p, target); c.SYNs != 1 || c.Refused != 1 {
				t.Errorf("counters %+v", c)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if n := passiveFilters(t, l); n != 0 {
				t.Errorf("%d passive filters after Close", n)
			}
		})
	}
	t.Run("after SIGKILL", func(t *testing.T) {
		n := testnet.New(t, testnet.Options{})
		rs := n.RealServers[0]
		l, err := netlink.LinkByName(rs.Link)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestPassiveHelperAttach$")
		cmd.Env = append(os.Environ(), envAttach+"="+rs.Link)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper: %q", line)
		}
		cmd.Process.Kill()
		cmd.Wait()
		if n := passiveFilters(t, l); n != 2 {
			t.Fatalf("%d filters after SIGKILL, want the 2 stale ones", n)
		}
		p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true})
		if _, err := p.Attach(l.Attrs().Index); err != nil {
			t.Fatal(err)
		}
		if n := passiveFilters(t, l); n != 0 && !p.opts.ForceClsact && kernelAtLeast(t, 6, 6) {
			t.Errorf("%d stale filters left after a new Attach", n)
		}
		p.Close()
		if n := passiveFilters(t, l); n != 0 {
			t.Errorf("%d filters after Close", n)
		}
	})
}

// envUnprivileged makes the test binary try to load the passive observer
// and print what it got (TestPassiveHelperUnprivileged).
const envUnprivileged = "LVSPROBE_PASSIVE_UNPRIVILEGED"

// TestPassiveHelperUnprivileged is not a test: run with envUnprivileged
// set (without CAP_BPF and CAP_SYS_ADMIN), it loads the passive observer
// and prints the error's classification.
func TestPassiveHelperUnprivileged(t *testing.T) {
	if os.Getenv(envUnprivileged) == "" {
		t.Skip("helper process only")
	}
	_, err := LoadPassive(PassiveOptions{})
	var ue *UnavailableError
	fmt.Printf("unavailable=%v not_supported=%v part=%v err=%v\n",
		errors.As(err, &ue), errors.Is(err, ErrNotSupported), ue != nil && ue.Part == "tc", err)
}

// TestPassiveUnprivileged: without the privilege to load BPF, LoadPassive
// returns a typed error that matches ErrNotSupported, so the daemon falls
// back to active checks.
func TestPassiveUnprivileged(t *testing.T) {
	testenv.RequireRoot(t)
	setpriv := testenv.RequireProgram(t, "setpriv")
	cmd := exec.Command(setpriv, "--bounding-set=-bpf,-sys_admin,-perfmon", "--",
		os.Args[0], "-test.run=^TestPassiveHelperUnprivileged$", "-test.v")
	cmd.Env = append(os.Environ(), envUnprivileged+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "unavailable=true not_supported=true part=true") {
		t.Errorf("want an UnavailableError of the TC part matching ErrNotSupported:\n%s", out)
	}
}

// TestPassiveEventTriggersRead: with a polling interval of an hour, a
// reset event alone makes Run read the counters, so the Delta with the
// dead server's resets comes at once.
func TestPassiveEventTriggersRead(t *testing.T) {
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, PollInterval: time.Hour})
	client, rs := routed(t, p)
	target := netip.AddrPortFrom(rs.Addr, 8080)
	if err := p.SetRealServers([]netip.AddrPort{target}); err != nil {
		t.Fatal(err)
	}
	l := rs.Listen(t, "tcp", target.String())
	go serve(l)
	if err := p.poll(); err != nil { // the baseline, before Run: the refusal below comes after it
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	c, err := dial(client, target, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the server to accept and close this connection before
	// closing the listener: a connection still in the accept queue is
	// reset when the listener closes, and that RST's event (the first
	// after a quiet gap) would take the place of the refusal's, so the
	// read it triggers could come before the refusal (this failed once
	// in the kernel lab under load).
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read = %v, want EOF (the server closed)", err)
	}
	c.Close()
	l.Close()
	if _, err := dial(client, target, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial = %v, want refused", err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ds := <-p.Deltas():
			for _, d := range ds {
				if d.RealServer == target && d.Clients.Refused > 0 {
					return
				}
			}
		case <-timeout:
			t.Fatal("no delta with the refusal: the event did not trigger a read")
		}
	}
}

// TestPassiveEventTail: the programs send one event of a kind per real
// server per EventGap, so a second refusal inside the gap raises none;
// the tail read EventTail after the event's read must still bring it
// (before it did, the second refusal waited for the next event or
// PollInterval: the 100-130 ms tail of a killed real server's removal
// under client traffic, docs/benchmarks.md §14). Run's reads are
// followed through a test hook, so the second refusal comes after the
// event's read for certain.
func TestPassiveEventTail(t *testing.T) {
	// The gap is long enough that the second refusal comes inside it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lab := newRefusalLab(ctx, t, 5*time.Second, time.Second)
	p, target, awaitRead, refuse := lab.p, lab.target, lab.awaitRead, lab.refuse
	refusals := make(chan uint64, 16) // each delta's refusals of target
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ds := <-p.Deltas():
				for _, d := range ds {
					if d.RealServer == target && d.Clients.Refused > 0 {
						refusals <- d.Clients.Refused
					}
				}
			}
		}
	}()
	awaitRead("start")
	refuse()
	awaitRead("event") // the first refusal's event
	refuse()           // inside the gap: no event
	awaitRead("tail")
	// The deltas are sent before the hook is told.
	var refused uint64
	deadline := time.After(10 * time.Second)
	for refused < 2 {
		select {
		case n := <-refusals:
			refused += n
		case <-deadline:
			t.Fatalf("the deltas carried %d refusals, want 2", refused)
		}
	}
}

// refusalLab is a passive observer without tracepoints watching one real
// server that refuses connections (nothing listens on target), running
// until ctx is done, its reads followed through the onRead hook.
type refusalLab struct {
	p         *Passive
	target    netip.AddrPort
	awaitRead func(why string) // fails the test unless a read for why comes within 10 s
	refuse    func()           // a client connect to target, refused
}

// newRefusalLab builds a refusalLab with the given event gap and tail.
func newRefusalLab(ctx context.Context, t *testing.T, gap, tail time.Duration) refusalLab {
	t.Helper()
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, PollInterval: time.Hour, EventGap: gap, EventTail: tail})
	client, rs := routed(t, p)
	target := netip.AddrPortFrom(rs.Addr, 8081) // nothing listens
	if err := p.SetRealServers([]netip.AddrPort{target}); err != nil {
		t.Fatal(err)
	}
	reads := make(chan string, 16)
	p.onRead = func(why string) { reads <- why }
	go p.Run(ctx)
	return refusalLab{
		p:      p,
		target: target,
		awaitRead: func(want string) {
			t.Helper()
			timeout := time.After(10 * time.Second)
			for {
				select {
				case why := <-reads:
					if why == want {
						return
					}
				case <-timeout:
					t.Fatalf("no %q read", want)
				}
			}
		},
		refuse: func() {
			t.Helper()
			if _, err := dial(client, target, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("dial = %v, want refused", err)
			}
		},
	}
}
