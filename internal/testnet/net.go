package testnet

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Options shape a topology.
type Options struct {
	RealServers int // number of real-server namespaces; 0 means 1 (at most 511 alive in a process)
	ExtraAddrs  int // addresses per real server besides its first (at most 252)
}

// Net is a topology: the director (this process's namespace) and its real
// servers.
type Net struct {
	RealServers []*RealServer
}

// RealServer is one real-server namespace, joined to the director by a
// veth pair on its own /24 of 198.18.0.0/15.
type RealServer struct {
	Name     string       // the namespace's name under /run/netns
	Link     string       // the director's end of the veth pair
	Director netip.Addr   // the director's address on the link (198.18.N.1)
	Addr     netip.Addr   // the real server's first address (198.18.N.2)
	Addrs    []netip.Addr // every address of the real server, Addr first

	ns netns.NsHandle

	napiDirector, napiPeer []int // NAPI thread pids, after ThreadedNAPI
}

// subnets hands out the /24s of 198.18.0.0/15 (1 to 511) to the real
// servers of a process, each back once its namespace is gone.
var subnets struct {
	sync.Mutex
	used [512]bool
	next uint32
}

// allocSubnet reserves a /24 until tb's cleanup.
func allocSubnet(tb testing.TB) (uint32, error) {
	subnets.Lock()
	defer subnets.Unlock()
	for i := range uint32(511) {
		idx := 1 + (subnets.next+i)%511
		if !subnets.used[idx] {
			subnets.used[idx], subnets.next = true, idx
			tb.Cleanup(func() {
				subnets.Lock()
				subnets.used[idx] = false
				subnets.Unlock()
			})
			return idx, nil
		}
	}
	return 0, errors.New("all 511 subnets of 198.18.0.0/15 in use")
}

// linkUpTimeout bounds the wait for a veth pair to carry traffic.
const linkUpTimeout = 10 * time.Second

// New builds a topology and registers its teardown with tb.Cleanup. It
// skips (fails under LVSPROBE_STRICT=1) when not root, and fails when the
// test binary does not run under [Main].
func New(tb testing.TB, opts Options) *Net {
	tb.Helper()
	testenv.RequireRoot(tb)
	testenv.RequireProgram(tb, "ip")
	if !Inside() {
		tb.Fatal("testnet.New needs TestMain to call testnet.Main")
	}
	if opts.RealServers <= 0 {
		opts.RealServers = 1
	}
	if opts.ExtraAddrs < 0 || opts.ExtraAddrs > 252 {
		tb.Fatalf("testnet: ExtraAddrs %d out of range 0..252", opts.ExtraAddrs)
	}
	n := &Net{}
	for range opts.RealServers {
		rs, err := addRealServer(tb, opts.ExtraAddrs)
		if err != nil {
			tb.Fatalf("testnet: %v", err)
		}
		n.RealServers = append(n.RealServers, rs)
	}
	return n
}

// addRealServer creates one namespace and its veth pair, registering the
// teardown of each piece as soon as it exists.
func addRealServer(tb testing.TB, extra int) (*RealServer, error) {
	idx, err := allocSubnet(tb)
	if err != nil {
		return nil, err
	}
	base := netip.AddrFrom4([4]byte{198, 18 + byte(idx>>8), byte(idx), 0})
	at := func(host byte) netip.Addr {
		b := base.As4()
		b[3] = host
		return netip.AddrFrom4(b)
	}
	rs := &RealServer{
		Name:     fmt.Sprintf("%s-rs%d", os.Getenv(envInner), idx),
		Link:     fmt.Sprintf("lvp%d", idx),
		Director: at(1),
		Addr:     at(2),
	}
	for i := 0; i <= extra; i++ {
		rs.Addrs = append(rs.Addrs, at(byte(2+i)))
	}

	if out, err := exec.Command("ip", "netns", "add", rs.Name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", rs.Name, err, strings.TrimSpace(string(out)))
	}
	tb.Cleanup(func() {
		if err := deleteNamed(rs.Name); err != nil {
			tb.Errorf("testnet: %v", err)
		}
	})
	ns, err := netns.GetFromName(rs.Name)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", rs.Name, err)
	}
	rs.ns = ns
	tb.Cleanup(func() { _ = ns.Close() })

	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: rs.Link},
		PeerName:      "eth0",
		PeerNamespace: netlink.NsFd(int(ns)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("add veth %s: %w", rs.Link, err)
	}
	tb.Cleanup(func() {
		if l, err := netlink.LinkByName(rs.Link); err == nil {
			_ = netlink.LinkDel(l)
		}
	})
	if err := configure(nil, rs.Link, []netip.Addr{rs.Director}); err != nil {
		return nil, err
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", rs.Name, err)
	}
	defer h.Close()
	if err := configure(h, "lo", nil); err != nil {
		return nil, err
	}
	if err := configure(h, "eth0", rs.Addrs); err != nil {
		return nil, err
	}
	if err := waitOperUp(nil, rs.Link); err != nil {
		return nil, err
	}
	if err := waitOperUp(&ns, "eth0"); err != nil {
		return nil, err
	}
	return rs, nil
}

// configure adds addrs (as /24s) to the link name and sets it up, through
// h, or in the director's namespace when h is nil.
func configure(h *netlink.Handle, name string, addrs []netip.Addr) error {
	if h == nil {
		h = &netlink.Handle{}
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	for _, a := range addrs {
		nl, err := netlink.ParseAddr(netip.PrefixFrom(a, 24).String())
		if err != nil {
			return fmt.Errorf("parse address %s: %w", a, err)
		}
		if err := h.AddrAdd(l, nl); err != nil {
			return fmt.Errorf("add %s to %s: %w", a, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// waitOperUp waits until the link name (in ns, or the director's
// namespace when ns is nil) is operationally up: before that the kernel
// drops what is sent through it.
func waitOperUp(ns *netns.NsHandle, name string) error {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	subErr := make(chan error, 1)
	opts := netlink.LinkSubscribeOptions{
		Namespace: ns,
		ErrorCallback: func(err error) {
			select {
			case subErr <- err:
			default:
			}
		},
	}
	if err := netlink.LinkSubscribeWithOptions(updates, done, opts); err != nil {
		return fmt.Errorf("subscribe to link updates: %w", err)
	}
	h := &netlink.Handle{}
	if ns != nil {
		var err error
		if h, err = netlink.NewHandleAt(*ns); err != nil {
			return fmt.Errorf("netlink handle: %w", err)
		}
		defer h.Close()
	}
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", name, err)
	}
	if l.Attrs().OperState == netlink.OperUp {
		return nil
	}
	timeout := time.NewTimer(linkUpTimeout)
	defer timeout.Stop()
	for {
		select {
		case u := <-updates:
			if u.Attrs().Name == name && u.Attrs().OperState == netlink.OperUp {
				return nil
			}
		case err := <-subErr:
			return fmt.Errorf("link updates: %w", err)
		case <-timeout.C:
			return fmt.Errorf("link %s not up after %v", name, linkUpTimeout)
		}
	}
}
