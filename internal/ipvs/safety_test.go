package ipvs

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestSafetyForeignLookAlikes puts services lvsprobe does not own beside
// its own, each as close to it as a key can be (same address other port,
// same address and port over UDP, a fwmark equal to the port, the same
// real server in each), and drives the reconciler through everything
// that writes: start with lvs_flush, every real server down and up,
// drift repair, a reload that drops the owned service, and the flush at
// stop with lvs_flush_on_stop FULL. The foreign services never change.
func TestSafetyForeignLookAlikes(t *testing.T) {
	ctx := t.Context()
	vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 2))
	cfg := configOf(vs)
	cfg.Global.LVSFlush = true
	cfg.Global.LVSFlushOnStop = "FULL"
	h := newHarness(t, cfg)
	vip := netip.MustParseAddr("198.18.0.1")
	foreign := []Service{
		{ServiceKey: config.ServiceKey{Protocol: config.TCP, Addr: vip, Port: 81, Family: "inet"}, Scheduler: "rr"},
		{ServiceKey: config.ServiceKey{Protocol: config.UDP, Addr: vip, Port: 80, Family: "inet"}, Scheduler: "rr"},
		{ServiceKey: config.ServiceKey{Protocol: config.TCP, FWMark: 80, Family: "inet"}, Scheduler: "rr"},
	}
	for _, s := range foreign {
		mustNil(t, h.dry.AddService(ctx, s))
		mustNil(t, h.dry.AddDestination(ctx, s.ServiceKey, Destination{Addr: netip.MustParseAddr("198.18.1.1"), Port: 80, Weight: 3}))
	}
	notOurs := func() []string {
		return slices.DeleteFunc(tableDump(t, h.dry), func(l string) bool {
			return strings.Contains(l, "-t 198.18.0.1:80 ") || strings.HasSuffix(l, "-t 198.18.0.1:80 -s wlc")
		})
	}
	want := notOurs()
	if len(want) != 6 {
		t.Fatalf("foreign table %q", want)
	}
	check := func(step string) {
		t.Helper()
		if diff := cmp.Diff(want, notOurs()); diff != "" {
			t.Fatalf("%s: a foreign service changed (-want +got):\n%s", step, diff)
		}
	}
	h.pass()
	check("start")
	for i := range vs.RealServers {
		h.r.SetHealth(key(vs, i), false)
	}
	h.pass()
	check("all down")
	for i := range vs.RealServers {
		h.r.SetHealth(key(vs, i), true)
	}
	h.pass()
	check("all up")
	// Drift: a stray destination in the owned service is repaired away.
	mustNil(t, h.dry.AddDestination(ctx, vs.Services[0], Destination{Addr: netip.MustParseAddr("198.18.1.9"), Port: 80, Weight: 1}))
	if got := h.pass(); !slices.Contains(got, "ipvsadm -d -t 198.18.0.1:80 -r 198.18.1.9:80") {
		t.Fatalf("drift not repaired: %q", got)
	}
	check("drift repair")
	// A reload without the owned service removes it, and only it.
	h.r.Update(configOf())
	if got := h.pass(); !slices.Equal(got, []string{"ipvsadm -D -t 198.18.0.1:80"}) {
		t.Fatalf("reload without the service: %q", got)
	}
	check("reload")
	h.r.Update(cfg)
	h.pass()
	mustNil(t, h.r.flushOnStop(ctx))
	check("flush on stop")
}

// TestSafetyLastRealServer pins the rule for the last alive real server
// of a service, which is keepalived 2.2.7's (check/ipwrapper.c): when it
// fails it leaves the table like any other, unless inhibit_on_failure
// keeps it at weight 0; a sorry_server comes in when quorum is lost (the
// sum of the alive weights drops to 0 or below quorum - hysteresis); the
// service itself always stays. lvsprobe adds no rule of its own that
// would keep a dead real server in.
func TestSafetyLastRealServer(t *testing.T) {
	const svc = "-t 198.18.0.1:80"
	tests := []struct {
		name    string
		inhibit bool
		sorry   bool
		want    []string // the table with every real server down
	}{
		{"plain: removed, the service stays empty", false, false, []string{"ipvsadm -A " + svc + " -s wlc"}},
		{"inhibit_on_failure: in at weight 0", true, false, []string{
			"ipvsadm -A " + svc + " -s wlc",
			"ipvsadm -a " + svc + " -r 198.18.1.1:80 -m -w 0",
			"ipvsadm -a " + svc + " -r 198.18.1.2:80 -m -w 0",
		}},
		{"sorry_server: replaces them", false, true, []string{
			"ipvsadm -A " + svc + " -s wlc",
			"ipvsadm -a " + svc + " -r 198.18.2.1:80 -m -w 1",
		}},
		{"both: inhibited at 0 beside the sorry server", true, true, []string{
			"ipvsadm -A " + svc + " -s wlc",
			"ipvsadm -a " + svc + " -r 198.18.1.1:80 -m -w 0",
			"ipvsadm -a " + svc + " -r 198.18.1.2:80 -m -w 0",
			"ipvsadm -a " + svc + " -r 198.18.2.1:80 -m -w 1",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1)
			a.InhibitOnFailure, b.InhibitOnFailure = tt.inhibit, tt.inhibit
			vs := virtualServer("198.18.0.1", 80, a, b)
			if tt.sorry {
				vs.SorryServer = &config.SorryServer{Addr: netip.MustParseAddr("198.18.2.1"), Port: 80}
			}
			h := newHarness(t, configOf(vs))
			h.pass()
			h.r.SetHealth(key(vs, 0), false)
			h.pass()
			// One alive: it stays, whatever the rules.
			if got := tableDump(t, h.dry); !slices.Contains(got, "ipvsadm -a "+svc+" -r 198.18.1.2:80 -m -w 1") {
				t.Fatalf("the alive real server is not in: %q", got)
			}
			h.r.SetHealth(key(vs, 1), false)
			h.pass()
			if diff := cmp.Diff(tt.want, tableDump(t, h.dry)); diff != "" {
				t.Fatalf("every real server down (-want +got):\n%s", diff)
			}
			h.r.SetHealth(key(vs, 1), true)
			h.pass()
			if got := tableDump(t, h.dry); !slices.Contains(got, "ipvsadm -a "+svc+" -r 198.18.1.2:80 -m -w 1") || slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, "198.18.2.1") && !strings.HasSuffix(l, "-w 0") }) {
				t.Fatalf("one back: %q", got)
			}
		})
	}
}
