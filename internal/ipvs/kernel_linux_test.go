//go:build linux

package ipvs

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// requireIPVS skips unless the kernel has IPVS (the host has none; the
// kernel lab's guest has). With LVSPROBE_REQUIRE_IPVS=1, as the kernel
// lab should set it, a missing IPVS fails instead.
func requireIPVS(tb testing.TB) {
	tb.Helper()
	testenv.RequireRoot(tb)
	if err := ipvsFamilyPresent(); err != nil {
		testenv.SkipForKernelLab(tb, err)
	}
}

// kernelInNewNetNS moves the calling goroutine's locked thread into a
// fresh network namespace with lo up and opens a Kernel there. The
// returned function closes it and restores the thread.
func kernelInNewNetNS(tb testing.TB) (*Kernel, func()) {
	tb.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("get netns: %v", err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		tb.Fatalf("new netns: %v", err)
	}
	restore := func() {
		if err := netns.Set(orig); err != nil {
			tb.Errorf("restore netns: %v", err) // the thread stays locked and dies with the goroutine
		} else {
			runtime.UnlockOSThread()
		}
		ns.Close()
		orig.Close()
	}
	// IPVS refuses destinations with EINVAL in a namespace whose lo is down.
	lo, err := netlink.LinkByName("lo")
	if err == nil {
		err = netlink.LinkSetUp(lo)
	}
	if err != nil {
		restore()
		tb.Fatalf("lo up: %v", err)
	}
	k, err := NewKernel(nil)
	if err != nil {
		restore()
		tb.Fatalf("NewKernel: %v", err)
	}
	return k, func() { k.Close(); restore() }
}

func TestNewKernelWithoutIPVS(t *testing.T) {
	if ipvsFamilyPresent() == nil {
		t.Skip("this kernel has IPVS")
	}
	_, err := NewKernel(nil)
	if !errors.Is(err, ErrNoIPVS) {
		t.Fatalf("NewKernel on a kernel without IPVS: err = %v, want ErrNoIPVS", err)
	}
}

func v4(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestKernelServicesRoundTrip(t *testing.T) {
	requireIPVS(t)
	k, done := kernelInNewNetNS(t)
	defer done()
	ctx := context.Background()
	tcp := func(addr string, port uint16) config.ServiceKey {
		a := v4(addr)
		fam := "inet"
		if a.Is6() {
			fam = "inet6"
		}
		return config.ServiceKey{Protocol: config.TCP, Addr: a, Port: port, Family: fam}
	}
	tests := []struct {
		name string
		svc  Service
	}{
		{"tcp v4 wlc", Service{ServiceKey: tcp("198.18.0.1", 80), Scheduler: "wlc"}},
		{"udp ops", Service{ServiceKey: config.ServiceKey{Protocol: config.UDP, Addr: v4("198.18.0.1"), Port: 53, Family: "inet"}, Scheduler: "rr", Flags: []string{"ops"}}},
		{"sctp", Service{ServiceKey: config.ServiceKey{Protocol: config.SCTP, Addr: v4("198.18.0.1"), Port: 3868, Family: "inet"}, Scheduler: "lc"}},
		{"fwmark v4", Service{ServiceKey: config.ServiceKey{FWMark: 7, Family: "inet"}, Scheduler: "wrr"}},
		{"fwmark v6 sh flags", Service{ServiceKey: config.ServiceKey{FWMark: 8, Family: "inet6"}, Scheduler: "sh", Flags: []string{"sh-fallback", "sh-port"}}},
		{"v4 persistence /24", Service{ServiceKey: tcp("198.18.0.2", 443), Scheduler: "wlc", Flags: []string{"persistent"}, Timeout: 300, Netmask: v4("255.255.255.0")}},
		{"v6 persistence /64", Service{ServiceKey: tcp("2001:db8::1", 443), Scheduler: "wlc", Flags: []string{"persistent"}, Timeout: 60, Netmask: v4("ffff:ffff:ffff:ffff::")}},
	}
	for i, sched := range []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"} {
		tests = append(tests, struct {
			name string
			svc  Service
		}{"scheduler " + sched, Service{ServiceKey: tcp("198.18.0.3", uint16(1000+i)), Scheduler: sched}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := k.AddService(ctx, tt.svc); err != nil {
				if tt.svc.Scheduler == "twos" && errors.Is(err, syscall.ENOENT) {
					t.Skipf("scheduler twos needs Linux 6.2 (ip_vs_twos): %v", err)
				}
				t.Fatalf("AddService: %v", err)
			}
			if err := k.AddService(ctx, tt.svc); !errors.Is(err, syscall.EEXIST) {
				t.Fatalf("second AddService: err = %v, want EEXIST", err)
			}
			got := findService(t, k, tt.svc.ServiceKey)
			if got == nil || !sameService(tt.svc, *got) {
				t.Fatalf("read back %+v, want %+v", got, tt.svc)
			}
			if err := k.DeleteService(ctx, tt.svc.ServiceKey); err != nil {
				t.Fatalf("DeleteService: %v", err)
			}
			if got := findService(t, k, tt.svc.ServiceKey); got != nil {
				t.Fatalf("service still there: %+v", got)
			}
			if err := k.DeleteService(ctx, tt.svc.ServiceKey); !errors.Is(err, syscall.ESRCH) && !errors.Is(err, syscall.ENOENT) {
				t.Fatalf("second DeleteService: err = %v, want ESRCH or ENOENT", err)
			}
		})
	}
	t.Run("update and persistence engine", func(t *testing.T) {
		s := Service{ServiceKey: config.ServiceKey{Protocol: config.UDP, Addr: v4("198.18.0.4"), Port: 5060, Family: "inet"}, Scheduler: "rr"}
		mustNil(t, k.AddService(ctx, s))
		s.Scheduler, s.Flags, s.Timeout, s.PEName = "wlc", []string{"persistent"}, 30, "sip"
		if err := k.UpdateService(ctx, s); err != nil {
			if errors.Is(err, syscall.ENOENT) {
				t.Skipf("persistence engine sip not loadable here: %v", err)
			}
			t.Fatalf("UpdateService: %v", err)
		}
		if got := findService(t, k, s.ServiceKey); got == nil || !sameService(s, *got) {
			t.Fatalf("read back %+v, want %+v", got, s)
		}
	})
}

func findService(t *testing.T, k *Kernel, key config.ServiceKey) *Service {
	t.Helper()
	svcs, err := k.Services(context.Background())
	if err != nil {
		t.Fatalf("Services: %v", err)
	}
	for _, s := range svcs {
		if serviceID(s.ServiceKey) == serviceID(key) {
			return &s
		}
	}
	return nil
}

func TestKernelDestinationsRoundTrip(t *testing.T) {
	requireIPVS(t)
	k, done := kernelInNewNetNS(t)
	defer done()
	ctx := context.Background()
	svc4 := config.ServiceKey{Protocol: config.TCP, Addr: v4("198.18.0.1"), Port: 80, Family: "inet"}
	svc6 := config.ServiceKey{Protocol: config.TCP, Addr: v4("2001:db8::1"), Port: 80, Family: "inet6"}
	mustNil(t, k.AddService(ctx, Service{ServiceKey: svc4, Scheduler: "wlc"}))
	mustNil(t, k.AddService(ctx, Service{ServiceKey: svc6, Scheduler: "wlc"}))
	tests := []struct {
		name string
		svc  config.ServiceKey
		d    Destination
	}{
		{"nat thresholds", svc4, Destination{Addr: v4("198.18.1.1"), Port: 8080, Weight: 3, Method: config.NAT, UpperThreshold: 100, LowerThreshold: 10}},
		{"dr", svc4, Destination{Addr: v4("198.18.1.2"), Port: 80, Weight: 1, Method: config.DR}},
		{"tun ipip", svc4, Destination{Addr: v4("198.18.1.3"), Port: 80, Weight: 1, Method: config.TUN, Tunnel: &config.Tunnel{Type: "ipip"}}},
		{"weight 0", svc4, Destination{Addr: v4("198.18.1.4"), Port: 80, Weight: 0, Method: config.DR}},
		{"v6 nat", svc6, Destination{Addr: v4("2001:db8::10"), Port: 8080, Weight: 65535, Method: config.NAT}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustNil(t, k.AddDestination(ctx, tt.svc, tt.d))
			if err := k.AddDestination(ctx, tt.svc, tt.d); !errors.Is(err, syscall.EEXIST) {
				t.Fatalf("second add: err = %v, want EEXIST", err)
			}
			checkDest(t, k, tt.svc, tt.d)
			up := tt.d
			up.Weight, up.UpperThreshold, up.LowerThreshold = 7, 50, 5
			mustNil(t, k.UpdateDestination(ctx, tt.svc, up))
			checkDest(t, k, tt.svc, up)
			mustNil(t, k.DeleteDestination(ctx, tt.svc, up))
			if err := k.DeleteDestination(ctx, tt.svc, up); !errors.Is(err, syscall.ENOENT) {
				t.Fatalf("second delete: err = %v, want ENOENT", err)
			}
			if err := k.UpdateDestination(ctx, tt.svc, up); !errors.Is(err, syscall.ENOENT) {
				t.Fatalf("update of a missing destination: err = %v, want ENOENT", err)
			}
		})
	}
}

func checkDest(t *testing.T, k *Kernel, svc config.ServiceKey, want Destination) {
	t.Helper()
	ds, err := k.Destinations(context.Background(), svc)
	mustNil(t, err)
	for _, d := range ds {
		if keyOf(d) == keyOf(want) {
			if !sameDestination(want, d) {
				t.Fatalf("read back %+v, want %+v", d, want)
			}
			return
		}
	}
	t.Fatalf("destination %v not in %v", want, ds)
}

func TestKernelReconciler(t *testing.T) {
	requireIPVS(t)
	k, done := kernelInNewNetNS(t)
	defer done()
	ctx := context.Background()
	foreign := Service{ServiceKey: config.ServiceKey{Protocol: config.TCP, Addr: v4("198.18.0.99"), Port: 80, Family: "inet"}, Scheduler: "rr"}
	mustNil(t, k.AddService(ctx, foreign))
	mustNil(t, k.AddDestination(ctx, foreign.ServiceKey, Destination{Addr: v4("198.18.1.1"), Port: 80, Weight: 1, Method: config.NAT}))

	a := realServer("198.18.1.1", 8080, 2)
	b := realServer("198.18.1.2", 8080, 1)
	b.Method, b.InhibitOnFailure = config.DR, true
	vs := virtualServer("198.18.0.1", 80, a, b)
	vs.SorryServer = &config.SorryServer{Addr: v4("198.18.2.1"), Port: 8080}
	cfg := configOf(vs)
	cfg.Global.LVSFlushOnStop = "VS"
	r := NewReconciler(k, cfg, ReconcilerOptions{})
	want := []string{
		"ipvsadm -A -t 198.18.0.1:80 -s wlc",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.1:8080 -m -w 2",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.2:80 -g -w 1",
		"ipvsadm -A -t 198.18.0.99:80 -s rr",
		"ipvsadm -a -t 198.18.0.99:80 -r 198.18.1.1:80 -m -w 1",
	}
	mustReconcileTo(t, ctx, r, k, want)

	// Both down: inhibit keeps b at 0, quorum lost brings the sorry server.
	r.SetHealth(key(vs, 0), false)
	r.SetHealth(key(vs, 1), false)
	mustNil(t, r.Reconcile(ctx))
	want = []string{
		"ipvsadm -A -t 198.18.0.1:80 -s wlc",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.2:80 -g -w 0",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.2.1:8080 -m -w 1",
		"ipvsadm -A -t 198.18.0.99:80 -s rr",
		"ipvsadm -a -t 198.18.0.99:80 -r 198.18.1.1:80 -m -w 1",
	}
	if diff := cmp.Diff(want, tableDump(t, k)); diff != "" {
		t.Fatalf("table after failures (-want +got):\n%s", diff)
	}

	// Drift: someone deletes the sorry server; the next pass repairs it.
	mustNil(t, k.DeleteDestination(ctx, vs.Services[0], Destination{Addr: v4("198.18.2.1"), Port: 8080}))
	mustNil(t, r.Reconcile(ctx))
	if diff := cmp.Diff(want, tableDump(t, k)); diff != "" {
		t.Fatalf("table after drift repair (-want +got):\n%s", diff)
	}

	// A restarted reconciler adopts the table without a write.
	r2 := NewReconciler(k, cfg, ReconcilerOptions{})
	r2.SetHealth(key(vs, 0), false)
	r2.SetHealth(key(vs, 1), false)
	mustNil(t, r2.Reconcile(ctx))
	if w := r2.Stats().Writes(); w != 0 {
		t.Fatalf("restart wrote %d times", w)
	}

	mustNil(t, r2.flushOnStop(ctx))
	if diff := cmp.Diff(want[3:], tableDump(t, k)); diff != "" {
		t.Fatalf("after lvs_flush_on_stop VS only the foreign service stays (-want +got):\n%s", diff)
	}
}

func TestKernelTimeouts(t *testing.T) {
	requireIPVS(t)
	k, done := kernelInNewNetNS(t)
	defer done()
	want := Timeouts{TCP: 901 * time.Second, TCPFin: 121 * time.Second, UDP: 301 * time.Second}
	mustNil(t, k.SetTimeouts(context.Background(), want))
	got, err := k.h.GetConfig()
	mustNil(t, err)
	if g := (Timeouts{TCP: got.TimeoutTCP, TCPFin: got.TimeoutTCPFin, UDP: got.TimeoutUDP}); g != want {
		t.Fatalf("timeouts read back %+v, want %+v", g, want)
	}
}
