package selftest_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/ipvs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// requireGuest skips unless the test runs inside the kernel lab. On the
// host the skip is no failure even under LVSPROBE_STRICT: the host kernel
// has no IPVS by design, and make vmtest runs these tests in the guest.
func requireGuest(t *testing.T) {
	t.Helper()
	if os.Getenv("LVSPROBE_VMLAB") != "1" {
		t.Skip("runs inside the kernel lab (make vmtest)")
	}
	testenv.RequireRoot(t)
}

// inNS runs f on an OS thread switched into ns, and switches back.
func inNS(t *testing.T, ns netns.NsHandle, f func() error) error {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns: %w", err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked and dies with the goroutine.
		t.Fatalf("leave netns: %v", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// newNS makes a network namespace with lo up (IPVS refuses destinations
// with EINVAL in a namespace whose lo is down).
func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("get netns: %v", err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("new netns: %v", err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("leave netns: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatalf("lo: %v", err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatalf("lo up: %v", err)
	}
	return ns
}

func TestIPVSFamily(t *testing.T) {
	requireGuest(t)
	fam, err := netlink.GenlFamilyGet("IPVS")
	if err != nil {
		t.Fatalf("generic netlink family IPVS: %v", err)
	}
	if fam.ID == 0 {
		t.Fatalf("generic netlink family IPVS has id 0")
	}
}

// TestIPVSTable adds a service whose scheduler module is not loaded yet
// (the kernel asks the guest's modprobe for it) and a destination, reads
// both back through netlink and through ipvsadm.
func TestIPVSTable(t *testing.T) {
	requireGuest(t)
	ns := newNS(t)
	h, err := ipvs.New(fmt.Sprintf("/proc/self/fd/%d", int(ns)))
	if err != nil {
		t.Fatalf("ipvs handle: %v", err)
	}
	defer h.Close()
	svc := &ipvs.Service{
		AddressFamily: syscall.AF_INET,
		Protocol:      syscall.IPPROTO_TCP,
		Address:       net.ParseIP("198.18.0.1").To4(),
		Port:          80,
		SchedName:     "sed",
		Netmask:       0xffffffff,
	}
	if err := h.NewService(svc); err != nil {
		t.Fatalf("add service: %v", err)
	}
	dst := &ipvs.Destination{
		AddressFamily:   syscall.AF_INET,
		Address:         net.ParseIP("198.18.1.1").To4(),
		Port:            8080,
		Weight:          3,
		ConnectionFlags: ipvs.ConnectionFlagMasq,
	}
	if err := h.NewDestination(svc, dst); err != nil {
		t.Fatalf("add destination: %v", err)
	}
	svcs, err := h.GetServices()
	if err != nil {
		t.Fatalf("get services: %v", err)
	}
	if len(svcs) != 1 || svcs[0].SchedName != "sed" || !svcs[0].Address.Equal(svc.Address) {
		t.Fatalf("services = %+v, want one sed service on 198.18.0.1", svcs)
	}
	dsts, err := h.GetDestinations(svcs[0])
	if err != nil {
		t.Fatalf("get destinations: %v", err)
	}
	if len(dsts) != 1 || dsts[0].Weight != 3 || dsts[0].Port != 8080 {
		t.Fatalf("destinations = %+v, want 198.18.1.1:8080 weight 3", dsts)
	}

	ipvsadm := testenv.RequireProgram(t, "ipvsadm")
	var out []byte
	err = inNS(t, ns, func() error {
		var err error
		out, err = exec.Command(ipvsadm, "-Ln").CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatalf("ipvsadm -Ln: %v\n%s", err, out)
	}
	for _, want := range []string{"TCP  198.18.0.1:80 sed", "-> 198.18.1.1:8080", "Masq    3"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("ipvsadm -Ln lacks %q:\n%s", want, out)
		}
	}
}

// TestVeth links two namespaces with a veth pair (the veth module) and
// carries a TCP exchange across it.
func TestVeth(t *testing.T) {
	requireGuest(t)
	a, b := newNS(t), newNS(t)
	ha, err := netlink.NewHandleAt(a)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	defer ha.Close()
	hb, err := netlink.NewHandleAt(b)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	defer hb.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "va"}, PeerName: "vb", PeerNamespace: netlink.NsFd(int(b))}
	if err := ha.LinkAdd(veth); err != nil {
		t.Fatalf("add veth: %v", err)
	}
	for _, end := range []struct {
		h    *netlink.Handle
		name string
		addr string
	}{{ha, "va", "198.18.2.1/30"}, {hb, "vb", "198.18.2.2/30"}} {
		l, err := end.h.LinkByName(end.name)
		if err != nil {
			t.Fatalf("%s: %v", end.name, err)
		}
		addr, err := netlink.ParseAddr(end.addr)
		if err != nil {
			t.Fatalf("parse %s: %v", end.addr, err)
		}
		if err := end.h.AddrAdd(l, addr); err != nil {
			t.Fatalf("address %s: %v", end.addr, err)
		}
		if err := end.h.LinkSetUp(l); err != nil {
			t.Fatalf("%s up: %v", end.name, err)
		}
	}

	var ln net.Listener
	if err := inNS(t, b, func() error {
		var err error
		ln, err = net.Listen("tcp", "198.18.2.2:0")
		return err
	}); err != nil {
		t.Fatalf("listen in b: %v", err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "hello from b")
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conn net.Conn
	if err := inNS(t, a, func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", ln.Addr().String())
		return err
	}); err != nil {
		t.Fatalf("dial from a: %v", err)
	}
	defer conn.Close()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != "hello from b" {
		t.Fatalf("got %q across the veth, want %q", got, "hello from b")
	}
}

// TestPrograms runs the host's programs that the guest borrows through
// the shared /usr.
func TestPrograms(t *testing.T) {
	requireGuest(t)
	for _, tc := range []struct {
		prog string
		args []string
		want string
	}{
		{"ipvsadm", []string{"-Ln"}, "IP Virtual Server version"},
		{"keepalived", []string{"--version"}, "Keepalived v"},
		{"nginx", []string{"-v"}, "nginx version"},
		{"ip", []string{"-V"}, "iproute2"},
		{"modprobe", []string{"sch_netem"}, ""},
	} {
		t.Run(tc.prog, func(t *testing.T) {
			path := testenv.RequireProgram(t, tc.prog)
			out, err := exec.Command(path, tc.args...).CombinedOutput()
			if err != nil {
				t.Fatalf("%s %v: %v\n%s", tc.prog, tc.args, err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("%s %v printed %q, want it to contain %q", tc.prog, tc.args, out, tc.want)
			}
		})
	}
}
