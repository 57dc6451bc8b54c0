//go:build linux

package ipvs

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netns"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// ipvsadm runs ipvsadm with args in the network namespace ns (a child
// inherits the namespace of the thread that starts it; subtests run on
// other goroutines than the one kernelInNewNetNS locked) and returns its
// output.
func ipvsadm(t *testing.T, ns netns.NsHandle, args ...string) string {
	t.Helper()
	bin := testenv.RequireProgram(t, "ipvsadm")
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get netns: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter netns: %v", err)
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if rerr := netns.Set(orig); rerr != nil {
		t.Errorf("restore netns: %v", rerr) // the thread stays locked and dies with the goroutine
	} else {
		runtime.UnlockOSThread()
	}
	if err != nil {
		t.Fatalf("ipvsadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// currentNetNS returns the network namespace of the calling (locked)
// thread, closed when t ends.
func currentNetNS(t *testing.T) netns.NsHandle {
	t.Helper()
	ns, err := netns.Get()
	if err != nil {
		t.Fatalf("get netns: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}

// ipvsadmTunnel returns the tunnel options ipvsadm -Sn prints for d.
func ipvsadmTunnel(d Destination) string {
	tun := tunnelOf(d.Method, d.Tunnel)
	switch {
	case tun == nil:
		return "--tun-type ipip"
	case tun.Type == "gue":
		return "--tun-type gue --tun-port " + strconv.Itoa(int(tun.Port)) + " --tun-" + tun.Checksum
	default:
		return "--tun-type " + tun.Type + " --tun-" + tun.Checksum
	}
}

// checkIpvsadmTunnel cross-checks d's tunnel options with ipvsadm's view.
func checkIpvsadmTunnel(t *testing.T, ns netns.NsHandle, d Destination) {
	t.Helper()
	save := ipvsadm(t, ns, "-Sn")
	for _, l := range strings.Split(save, "\n") {
		if strings.Contains(l, " -r "+addrPort(d.Addr, d.Port)+" ") {
			if !strings.HasSuffix(strings.TrimSpace(l), ipvsadmTunnel(d)) {
				t.Fatalf("ipvsadm shows %q, want it to end in %q", l, ipvsadmTunnel(d))
			}
			return
		}
	}
	t.Fatalf("destination %s not in ipvsadm -Sn:\n%s", addrPort(d.Addr, d.Port), save)
}

func TestKernelTunRoundTrip(t *testing.T) {
	requireIPVS(t)
	k, done := kernelInNewNetNS(t)
	defer done()
	ns := currentNetNS(t)
	ctx := context.Background()
	svc4 := config.ServiceKey{Protocol: config.TCP, Addr: v4("198.18.0.1"), Port: 80, Family: "inet"}
	svc6 := config.ServiceKey{Protocol: config.TCP, Addr: v4("2001:db8::1"), Port: 443, Family: "inet6"}
	mark := config.ServiceKey{FWMark: 9, Family: "inet"}
	for _, s := range []config.ServiceKey{svc4, svc6, mark} {
		mustNil(t, k.AddService(ctx, Service{ServiceKey: s, Scheduler: "wlc"}))
	}
	tun := func(typ string, port uint16, csum string) *config.Tunnel {
		return &config.Tunnel{Type: typ, Port: port, Checksum: csum}
	}
	tests := []struct {
		name   string
		svc    config.ServiceKey
		d      Destination
		update *config.Tunnel // the tunnel an edit switches to
	}{
		{"ipip", svc4, Destination{Addr: v4("198.18.1.1"), Port: 80, Weight: 1, Method: config.TUN}, tun("gue", 6080, "csum")},
		{"ipip explicit", svc4, Destination{Addr: v4("198.18.1.2"), Port: 80, Weight: 1, Method: config.TUN, Tunnel: tun("ipip", 0, "nocsum")}, tun("gre", 0, "csum")},
		{"gue nocsum", svc4, Destination{Addr: v4("198.18.1.3"), Port: 80, Weight: 2, Method: config.TUN, Tunnel: tun("gue", 6080, "nocsum")}, tun("gue", 6081, "remcsum")},
		{"gue csum", svc4, Destination{Addr: v4("198.18.1.4"), Port: 80, Weight: 2, Method: config.TUN, Tunnel: tun("gue", 6080, "csum"), UpperThreshold: 100, LowerThreshold: 10}, nil},
		{"gue remcsum", svc4, Destination{Addr: v4("198.18.1.5"), Port: 80, Weight: 2, Method: config.TUN, Tunnel: tun("gue", 6080, "remcsum")}, tun("gre", 0, "nocsum")},
		{"gre nocsum", svc4, Destination{Addr: v4("198.18.1.6"), Port: 80, Weight: 3, Method: config.TUN, Tunnel: tun("gre", 0, "nocsum")}, tun("gre", 0, "csum")},
		{"gre csum", svc4, Destination{Addr: v4("198.18.1.7"), Port: 80, Weight: 3, Method: config.TUN, Tunnel: tun("gre", 0, "csum")}, nil},
		{"gre remcsum", svc4, Destination{Addr: v4("198.18.1.8"), Port: 80, Weight: 3, Method: config.TUN, Tunnel: tun("gre", 0, "remcsum")}, tun("gue", 6080, "nocsum")},
		{"v6 gre csum", svc6, Destination{Addr: v4("2001:db8::10"), Port: 443, Weight: 1, Method: config.TUN, Tunnel: tun("gre", 0, "csum")}, tun("gue", 6080, "csum")},
		{"fwmark gue csum", mark, Destination{Addr: v4("198.18.1.9"), Port: 0, Weight: 1, Method: config.TUN, Tunnel: tun("gue", 6080, "csum")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustNil(t, k.AddDestination(ctx, tt.svc, tt.d))
			if err := k.AddDestination(ctx, tt.svc, tt.d); !errors.Is(err, syscall.EEXIST) {
				t.Fatalf("second add: err = %v, want EEXIST", err)
			}
			checkDest(t, k, tt.svc, tt.d)
			checkIpvsadmTunnel(t, ns, tt.d)

			up := tt.d
			up.Weight, up.Tunnel = 7, tt.update
			mustNil(t, k.UpdateDestination(ctx, tt.svc, up))
			checkDest(t, k, tt.svc, up)
			checkIpvsadmTunnel(t, ns, up)

			mustNil(t, k.DeleteDestination(ctx, tt.svc, up))
			if err := k.DeleteDestination(ctx, tt.svc, up); !errors.Is(err, syscall.ENOENT) {
				t.Fatalf("second delete: err = %v, want ENOENT", err)
			}
			if err := k.UpdateDestination(ctx, tt.svc, tt.d); !errors.Is(err, syscall.ENOENT) {
				t.Fatalf("update of a missing destination: err = %v, want ENOENT", err)
			}
		})
	}
	t.Run("gue without a port is refused by the kernel", func(t *testing.T) {
		d := Destination{Addr: v4("198.18.1.20"), Port: 80, Weight: 1, Method: config.TUN, Tunnel: tun("gue", 0, "csum")}
		if err := k.AddDestination(ctx, svc4, d); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("err = %v, want EINVAL", err)
		}
	})
	t.Run("a tunnel changed by hand reads back as changed", func(t *testing.T) {
		d := Destination{Addr: v4("198.18.1.21"), Port: 80, Weight: 1, Method: config.TUN, Tunnel: tun("gre", 0, "csum")}
		mustNil(t, k.AddDestination(ctx, svc4, d))
		ipvsadm(t, ns, "-e", "-t", "198.18.0.1:80", "-r", "198.18.1.21:80", "-i", "-w", "1", "--tun-type", "gue", "--tun-port", "7000", "--tun-nocsum")
		d.Tunnel = tun("gue", 7000, "nocsum")
		checkDest(t, k, svc4, d)
	})
}

// TestKernelTunReconciler converges a table with every tunnel kind, is
// idempotent on the second pass and on a restart, and repairs a tunnel
// option changed behind its back.
func TestKernelTunReconciler(t *testing.T) {
	requireIPVS(t)
	k, done := kernelInNewNetNS(t)
	defer done()
	ns := currentNetNS(t)
	ctx := context.Background()

	rs := func(addr string, tun *config.Tunnel) *config.RealServer {
		r := realServer(addr, 80, 1)
		r.Method, r.Tunnel = config.TUN, tun
		return r
	}
	vs := virtualServer("198.18.0.1", 80,
		rs("198.18.1.1", &config.Tunnel{Type: "ipip", Checksum: "nocsum"}),
		rs("198.18.1.2", &config.Tunnel{Type: "gue", Port: 6080, Checksum: "nocsum"}),
		rs("198.18.1.3", &config.Tunnel{Type: "gue", Port: 6080, Checksum: "csum"}),
		rs("198.18.1.4", &config.Tunnel{Type: "gre", Checksum: "csum"}),
		rs("198.18.1.5", &config.Tunnel{Type: "gre", Checksum: "remcsum"}),
	)
	vs.Method = config.TUN
	cfg := configOf(vs)
	r := NewReconciler(k, cfg, ReconcilerOptions{})
	want := []string{
		"ipvsadm -A -t 198.18.0.1:80 -s wlc",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.1:80 -i -w 1",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.2:80 -i --tun-type gue --tun-port 6080 --tun-nocsum -w 1",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.3:80 -i --tun-type gue --tun-port 6080 --tun-csum -w 1",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.4:80 -i --tun-type gre --tun-csum -w 1",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.5:80 -i --tun-type gre --tun-remcsum -w 1",
	}
	mustReconcileTo(t, ctx, r, k, want)
	r2 := NewReconciler(k, cfg, ReconcilerOptions{})
	mustNil(t, r2.Reconcile(ctx))
	if w := r2.Stats().Writes(); w != 0 {
		t.Fatalf("restart wrote %d times", w)
	}

	// Drift: a human turns the gue checksum off; the next pass restores it.
	ipvsadm(t, ns, "-e", "-t", "198.18.0.1:80", "-r", "198.18.1.3:80", "-i", "-w", "1", "--tun-type", "gue", "--tun-port", "6080", "--tun-nocsum")
	if diff := cmp.Diff(want, tableDump(t, k)); diff == "" {
		t.Fatal("the hand edit did not show in the table")
	}
	writes := r2.Stats().Writes()
	mustNil(t, r2.Reconcile(ctx))
	if w := r2.Stats().Writes(); w != writes+1 {
		t.Fatalf("drift repair wrote %d times, want 1", w-writes)
	}
	if diff := cmp.Diff(want, tableDump(t, k)); diff != "" {
		t.Fatalf("table after drift repair (-want +got):\n%s", diff)
	}
	checkIpvsadmTunnel(t, ns, Destination{Addr: v4("198.18.1.3"), Port: 80, Method: config.TUN, Tunnel: &config.Tunnel{Type: "gue", Port: 6080, Checksum: "csum"}})
}

// BenchmarkKernelDestinationsTun lists a service of 256 destinations,
// NAT against gue (whose replies carry tunnel options to decode).
func BenchmarkKernelDestinationsTun(b *testing.B) {
	for _, tc := range []struct {
		name   string
		method config.Method
		tun    *config.Tunnel
	}{
		{"nat", config.NAT, nil},
		{"gue", config.TUN, &config.Tunnel{Type: "gue", Port: 6080, Checksum: "csum"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			requireIPVS(b)
			k, done := kernelInNewNetNS(b)
			defer done()
			ctx := context.Background()
			svc := config.ServiceKey{Protocol: config.TCP, Addr: v4("198.18.0.1"), Port: 80, Family: "inet"}
			if err := k.AddService(ctx, Service{ServiceKey: svc, Scheduler: "wlc"}); err != nil {
				b.Fatal(err)
			}
			for i := range 256 {
				d := Destination{Addr: netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), Port: 80, Weight: 1, Method: tc.method, Tunnel: tc.tun}
				if err := k.AddDestination(ctx, svc, d); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				ds, err := k.Destinations(ctx, svc)
				if err != nil || len(ds) != 256 {
					b.Fatalf("Destinations: %d, %v", len(ds), err)
				}
			}
		})
	}
}
