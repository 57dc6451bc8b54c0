package ipvs

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// step is one action on a harness and the commands the next pass must
// issue, in order.
type step struct {
	name string
	do   func(h *harness)
	want []string
}

func runSteps(t *testing.T, h *harness, steps []step) {
	t.Helper()
	for i, s := range steps {
		if s.do != nil {
			s.do(h)
		}
		got := h.pass()
		if diff := cmp.Diff(s.want, got); diff != "" {
			t.Fatalf("step %d (%s): commands (-want +got):\n%s", i, s.name, diff)
		}
		// Idempotence: a second pass with nothing changed writes nothing.
		if again := h.pass(); len(again) != 0 {
			t.Fatalf("step %d (%s): second pass issued %q", i, s.name, again)
		}
	}
}

func TestReconcilerKeepalivedSemantics(t *testing.T) {
	const svc = "-t 198.18.0.1:80"
	tests := []struct {
		name  string
		build func() *config.VirtualServer
		steps func(vs *config.VirtualServer) []step
	}{{
		name: "without alpha real servers start in; down removes, up re-adds",
		build: func() *config.VirtualServer {
			return virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 8080, 1), realServer("198.18.1.2", 8080, 3))
		},
		steps: func(vs *config.VirtualServer) []step {
			return []step{
				{"start", nil, []string{
					"ipvsadm -A " + svc + " -s wlc",
					"ipvsadm -a " + svc + " -r 198.18.1.1:8080 -m -w 1",
					"ipvsadm -a " + svc + " -r 198.18.1.2:8080 -m -w 3",
				}},
				{"first check passes: nothing to do", func(h *harness) { h.r.SetHealth(key(vs, 0), true) }, nil},
				{"down", func(h *harness) { h.r.SetHealth(key(vs, 1), false) }, []string{"ipvsadm -d " + svc + " -r 198.18.1.2:8080"}},
				{"up", func(h *harness) { h.r.SetHealth(key(vs, 1), true) }, []string{"ipvsadm -a " + svc + " -r 198.18.1.2:8080 -m -w 3"}},
			}
		},
	}, {
		name: "alpha keeps real servers out until a check passes",
		build: func() *config.VirtualServer {
			a, b := realServer("198.18.1.1", 8080, 1), realServer("198.18.1.2", 8080, 1)
			a.Checkers[0].Alpha = true
			b.Alpha = true
			return virtualServer("198.18.0.1", 80, a, b)
		},
		steps: func(vs *config.VirtualServer) []step {
			return []step{
				{"start", nil, []string{"ipvsadm -A " + svc + " -s wlc"}},
				{"first fails: still out", func(h *harness) { h.r.SetHealth(key(vs, 0), false) }, nil},
				{"passes", func(h *harness) { h.r.SetHealth(key(vs, 1), true) }, []string{"ipvsadm -a " + svc + " -r 198.18.1.2:8080 -m -w 1"}},
			}
		},
	}, {
		name: "inhibit_on_failure sets weight 0 instead of deleting",
		build: func() *config.VirtualServer {
			a := realServer("198.18.1.1", 8080, 5)
			a.InhibitOnFailure = true
			a.Alpha = true
			return virtualServer("198.18.0.1", 80, a, realServer("198.18.1.2", 8080, 1))
		},
		steps: func(vs *config.VirtualServer) []step {
			return []step{
				{"start: alpha + inhibit is in with weight 0", nil, []string{
					"ipvsadm -A " + svc + " -s wlc",
					"ipvsadm -a " + svc + " -r 198.18.1.1:8080 -m -w 0",
					"ipvsadm -a " + svc + " -r 198.18.1.2:8080 -m -w 1",
				}},
				{"up", func(h *harness) { h.r.SetHealth(key(vs, 0), true) }, []string{"ipvsadm -e " + svc + " -r 198.18.1.1:8080 -m -w 5"}},
				{"down", func(h *harness) { h.r.SetHealth(key(vs, 0), false) }, []string{"ipvsadm -e " + svc + " -r 198.18.1.1:8080 -m -w 0"}},
			}
		},
	}, {
		name: "quorum with hysteresis brings the sorry server in and out",
		build: func() *config.VirtualServer {
			vs := virtualServer("198.18.0.1", 80,
				realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1),
				realServer("198.18.1.3", 80, 1), realServer("198.18.1.4", 80, 1))
			vs.Quorum, vs.Hysteresis = 3, 1 // lost below 2, regained at 4
			vs.SorryServer = &config.SorryServer{Addr: netip.MustParseAddr("198.18.2.1"), Port: 80}
			return vs
		},
		steps: func(vs *config.VirtualServer) []step {
			return []step{
				{"start with quorum (4 >= 3+1)", nil, []string{
					"ipvsadm -A " + svc + " -s wlc",
					"ipvsadm -a " + svc + " -r 198.18.1.1:80 -m -w 1",
					"ipvsadm -a " + svc + " -r 198.18.1.2:80 -m -w 1",
					"ipvsadm -a " + svc + " -r 198.18.1.3:80 -m -w 1",
					"ipvsadm -a " + svc + " -r 198.18.1.4:80 -m -w 1",
				}},
				{"3 alive: quorum holds", func(h *harness) { h.r.SetHealth(key(vs, 0), false) }, []string{"ipvsadm -d " + svc + " -r 198.18.1.1:80"}},
				{"2 alive: not below 3-1, holds", func(h *harness) { h.r.SetHealth(key(vs, 1), false) }, []string{"ipvsadm -d " + svc + " -r 198.18.1.2:80"}},
				{"1 alive: lost, sorry server in", func(h *harness) { h.r.SetHealth(key(vs, 2), false) }, []string{
					"ipvsadm -d " + svc + " -r 198.18.1.3:80",
					"ipvsadm -d " + svc + " -r 198.18.1.4:80",
					"ipvsadm -a " + svc + " -r 198.18.2.1:80 -m -w 1",
				}},
				{"2 alive: below 3+1, still lost", func(h *harness) { h.r.SetHealth(key(vs, 0), true) }, nil},
				{"3 alive: still lost", func(h *harness) { h.r.SetHealth(key(vs, 1), true) }, nil},
				{"4 alive: regained, sorry out", func(h *harness) { h.r.SetHealth(key(vs, 2), true) }, []string{
					"ipvsadm -d " + svc + " -r 198.18.2.1:80",
					"ipvsadm -a " + svc + " -r 198.18.1.1:80 -m -w 1",
					"ipvsadm -a " + svc + " -r 198.18.1.2:80 -m -w 1",
					"ipvsadm -a " + svc + " -r 198.18.1.3:80 -m -w 1",
					"ipvsadm -a " + svc + " -r 198.18.1.4:80 -m -w 1",
				}},
			}
		},
	}, {
		name: "sorry_server_inhibit keeps the sorry server at weight 0; inhibited real servers go to 0 without quorum",
		build: func() *config.VirtualServer {
			a := realServer("198.18.1.1", 80, 2)
			a.InhibitOnFailure = true
			vs := virtualServer("198.18.0.1", 80, a, realServer("198.18.1.2", 80, 1))
			vs.Quorum = 2
			vs.SorryServer = &config.SorryServer{Addr: netip.MustParseAddr("198.18.2.1"), Port: 80, Method: config.DR}
			vs.SorryServerInhibit = true
			return vs
		},
		steps: func(vs *config.VirtualServer) []step {
			return []step{
				{"start", nil, []string{
					"ipvsadm -A " + svc + " -s wlc",
					"ipvsadm -a " + svc + " -r 198.18.1.1:80 -m -w 2",
					"ipvsadm -a " + svc + " -r 198.18.1.2:80 -m -w 1",
					"ipvsadm -a " + svc + " -r 198.18.2.1:80 -g -w 0",
				}},
				{"weight 2 down: sum 1 < 2, quorum lost", func(h *harness) { h.r.SetHealth(key(vs, 0), false) }, []string{
					"ipvsadm -d " + svc + " -r 198.18.1.2:80",
					"ipvsadm -e " + svc + " -r 198.18.1.1:80 -m -w 0",
					"ipvsadm -e " + svc + " -r 198.18.2.1:80 -g -w 1",
				}},
				{"back: quorum regained", func(h *harness) { h.r.SetHealth(key(vs, 0), true) }, []string{
					"ipvsadm -e " + svc + " -r 198.18.1.1:80 -m -w 2",
					"ipvsadm -e " + svc + " -r 198.18.2.1:80 -g -w 0",
					"ipvsadm -a " + svc + " -r 198.18.1.2:80 -m -w 1",
				}},
			}
		},
	}, {
		name: "without a sorry server quorum changes nothing in the table",
		build: func() *config.VirtualServer {
			vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1))
			vs.Quorum = 2
			return vs
		},
		steps: func(vs *config.VirtualServer) []step {
			return []step{
				{"start", nil, []string{
					"ipvsadm -A " + svc + " -s wlc",
					"ipvsadm -a " + svc + " -r 198.18.1.1:80 -m -w 1",
					"ipvsadm -a " + svc + " -r 198.18.1.2:80 -m -w 1",
				}},
				{"quorum lost", func(h *harness) { h.r.SetHealth(key(vs, 0), false) }, []string{"ipvsadm -d " + svc + " -r 198.18.1.1:80"}},
			}
		},
	}, {
		name: "DR and TUN use the service port; thresholds and tunnel options",
		build: func() *config.VirtualServer {
			a, b := realServer("198.18.1.1", 8080, 1), realServer("198.18.1.2", 8080, 1)
			a.Method, a.UpperThreshold, a.LowerThreshold = config.DR, 100, 10
			b.Method, b.Tunnel = config.TUN, &config.Tunnel{Type: "gue", Port: 6080, Checksum: "remcsum"}
			return virtualServer("198.18.0.1", 80, a, b)
		},
		steps: func(*config.VirtualServer) []step {
			return []step{{"start", nil, []string{
				"ipvsadm -A " + svc + " -s wlc",
				"ipvsadm -a " + svc + " -r 198.18.1.1:80 -g -w 1 -x 100 -y 10",
				"ipvsadm -a " + svc + " -r 198.18.1.2:80 -i --tun-type gue --tun-port 6080 --tun-remcsum -w 1",
			}}}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := tt.build()
			h := newHarness(t, configOf(vs))
			runSteps(t, h, tt.steps(vs))
		})
	}
}

func TestReconcilerGroupAndServiceOptions(t *testing.T) {
	a := realServer("198.18.1.1", 8080, 1)
	a.Method = config.DR
	vs := &config.VirtualServer{
		Group: "web", Family: "inet", Protocol: config.UDP,
		Services: []config.ServiceKey{
			{Protocol: config.UDP, Addr: netip.MustParseAddr("198.18.0.1"), Port: 53, Family: "inet"},
			{Protocol: config.UDP, Addr: netip.MustParseAddr("198.18.0.2"), Port: 5353, Family: "inet"},
			{FWMark: 7, Family: "inet"},
		},
		Scheduler: "sh", SchedFlags: []string{"sh-port", "sh-fallback"}, OnePacket: true,
		Persistence: 300e9, PersistMask: netip.MustParseAddr("255.255.255.0"), PersistEngine: "sip",
		Method: config.NAT, Quorum: 1, RealServers: []*config.RealServer{a},
	}
	h := newHarness(t, configOf(vs))
	runSteps(t, h, []step{{"start", nil, []string{
		"ipvsadm -A -u 198.18.0.1:53 -s sh -b flag-1,flag-2 -o -p 300 -M 255.255.255.0 --pe sip",
		"ipvsadm -a -u 198.18.0.1:53 -r 198.18.1.1:53 -g -w 1",
		"ipvsadm -A -u 198.18.0.2:5353 -s sh -b flag-1,flag-2 -o -p 300 -M 255.255.255.0 --pe sip",
		"ipvsadm -a -u 198.18.0.2:5353 -r 198.18.1.1:5353 -g -w 1",
		"ipvsadm -A -f 7 -s sh -b flag-1,flag-2 -o -p 300 -M 255.255.255.0 --pe sip",
		"ipvsadm -a -f 7 -r 198.18.1.1:0 -g -w 1",
	}}})
}

func TestReconcilerAdoptsTableOnRestart(t *testing.T) {
	build := func() *config.VirtualServer {
		rss := []*config.RealServer{
			realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1),
			realServer("198.18.1.3", 80, 1), realServer("198.18.1.4", 80, 2),
		}
		for _, rs := range rss {
			rs.Checkers[0].Alpha = true
		}
		rss[3].InhibitOnFailure = true
		return virtualServer("198.18.0.1", 80, rss...)
	}
	vs1 := build()
	h1 := newHarness(t, configOf(vs1))
	h1.r.SetHealth(key(vs1, 0), true)
	h1.r.SetHealth(key(vs1, 1), true)
	h1.r.SetHealth(key(vs1, 2), false)
	h1.r.SetHealth(key(vs1, 3), false)
	h1.pass()
	before := tableDump(t, h1.dry)

	// A new process: same table, same config, no health known yet.
	vs2 := build()
	h2 := newHarnessOn(t, h1.dry, h1.out, h1.dry, configOf(vs2))
	if got := h2.pass(); len(got) != 0 {
		t.Fatalf("restart issued %q, want nothing", got)
	}
	if st := h2.r.Stats(); st.Writes() != 0 {
		t.Fatalf("restart wrote %d times", st.Writes())
	}
	if diff := cmp.Diff(before, tableDump(t, h2.dry)); diff != "" {
		t.Fatalf("table changed on restart:\n%s", diff)
	}
	// Checks then decide as usual: the adopted real server can still go.
	h2.r.SetHealth(key(vs2, 0), false)
	h2.r.SetHealth(key(vs2, 2), true)
	want := []string{
		"ipvsadm -d -t 198.18.0.1:80 -r 198.18.1.1:80",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.3:80 -m -w 1",
	}
	if diff := cmp.Diff(want, h2.pass()); diff != "" {
		t.Fatalf("after checks (-want +got):\n%s", diff)
	}
}

func TestReconcilerRepairsDrift(t *testing.T) {
	vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 4))
	vs.RealServers[1].Checkers[0].Alpha = true
	h := newHarness(t, configOf(vs))
	h.r.SetHealth(key(vs, 1), true)
	h.pass()
	ctx := t.Context()
	svcKey := vs.Services[0]
	tests := []struct {
		name  string
		drift func() error
		want  []string
	}{
		{"ipvsadm -d", func() error {
			return h.dry.DeleteDestination(ctx, svcKey, Destination{Addr: netip.MustParseAddr("198.18.1.2"), Port: 80})
		}, []string{"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.2:80 -m -w 4"}},
		{"ipvsadm -e -w 9", func() error {
			return h.dry.UpdateDestination(ctx, svcKey, Destination{Addr: netip.MustParseAddr("198.18.1.1"), Port: 80, Weight: 9, Method: config.DR})
		}, []string{"ipvsadm -e -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 1"}},
		{"stray destination in our service", func() error {
			return h.dry.AddDestination(ctx, svcKey, Destination{Addr: netip.MustParseAddr("198.18.9.9"), Port: 80, Weight: 1})
		}, []string{"ipvsadm -d -t 198.18.0.1:80 -r 198.18.9.9:80"}},
		{"ipvsadm -E -s rr", func() error {
			return h.dry.UpdateService(ctx, Service{ServiceKey: svcKey, Scheduler: "rr"})
		}, []string{"ipvsadm -E -t 198.18.0.1:80 -s wlc"}},
		{"ipvsadm -D", func() error { return h.dry.DeleteService(ctx, svcKey) }, []string{
			"ipvsadm -A -t 198.18.0.1:80 -s wlc",
			"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 1",
			"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.2:80 -m -w 4",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.drift(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, h.pass()); diff != "" {
				t.Fatalf("repair (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReconcilerReloadTouchesOnlyChanges(t *testing.T) {
	mk := func() (*config.VirtualServer, *config.VirtualServer) {
		a := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1), realServer("198.18.1.3", 80, 1))
		b := virtualServer("198.18.0.2", 443, realServer("198.18.1.1", 443, 1))
		return a, b
	}
	a, b := mk()
	a.RealServers[2].Checkers[0].Alpha = true
	h := newHarness(t, configOf(a, b))
	h.r.SetHealth(key(a, 1), false) // known down: must stay down across the reload
	h.r.SetHealth(key(a, 2), true)
	h.pass()

	a2, _ := mk()
	a2.RealServers[0].Weight = 7                                                 // changed
	a2.RealServers = append(a2.RealServers[:2], realServer("198.18.1.4", 80, 1)) // .3 removed, .4 added
	a2.Scheduler = "rr"                                                          // service edit
	c := virtualServer("198.18.0.3", 80, realServer("198.18.1.9", 80, 1))        // new VS; b removed
	h.r.Update(configOf(a2, c))
	want := []string{
		"ipvsadm -E -t 198.18.0.1:80 -s rr",
		"ipvsadm -d -t 198.18.0.1:80 -r 198.18.1.3:80",
		"ipvsadm -e -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 7",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.4:80 -m -w 1",
		"ipvsadm -A -t 198.18.0.3:80 -s wlc",
		"ipvsadm -a -t 198.18.0.3:80 -r 198.18.1.9:80 -m -w 1",
		"ipvsadm -D -t 198.18.0.2:443",
	}
	runSteps(t, h, []step{{"reload", nil, want}})
	if up, known := h.r.QuorumUp(b.ID()); known {
		t.Fatalf("quorum of removed VS still kept (up=%v)", up)
	}
}

func TestReconcilerNeverTouchesForeignServices(t *testing.T) {
	for _, mode := range []string{"", "RS", "VS", "FULL"} {
		t.Run("lvs_flush_on_stop="+mode, func(t *testing.T) {
			vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1))
			cfg := configOf(vs)
			cfg.Global.LVSFlush = true
			cfg.Global.LVSFlushOnStop = mode
			h := newHarness(t, cfg)
			ctx := t.Context()
			foreign := Service{ServiceKey: config.ServiceKey{Protocol: config.TCP, Addr: netip.MustParseAddr("198.18.0.99"), Port: 80, Family: "inet"}, Scheduler: "rr"}
			mustNil(t, h.dry.AddService(ctx, foreign))
			mustNil(t, h.dry.AddDestination(ctx, foreign.ServiceKey, Destination{Addr: netip.MustParseAddr("198.18.1.1"), Port: 80, Weight: 1}))
			// A stale copy of our own service, as a crashed run left it.
			mustNil(t, h.dry.AddService(ctx, Service{ServiceKey: vs.Services[0], Scheduler: "wlc"}))
			mustNil(t, h.dry.AddDestination(ctx, vs.Services[0], Destination{Addr: netip.MustParseAddr("198.18.1.1"), Port: 80, Weight: 1}))
			foreignDump := foreignOnly(tableDump(t, h.dry))

			want := []string{ // lvs_flush: ours only, rebuilt
				"ipvsadm -D -t 198.18.0.1:80",
				"ipvsadm -A -t 198.18.0.1:80 -s wlc",
				"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 1",
			}
			if diff := cmp.Diff(want, h.pass()); diff != "" {
				t.Fatalf("start (-want +got):\n%s", diff)
			}
			h.out.Reset()
			mustNil(t, h.r.flushOnStop(ctx))
			wantStop := map[string][]string{
				"":     nil,
				"RS":   {"ipvsadm -d -t 198.18.0.1:80 -r 198.18.1.1:80", "ipvsadm -D -t 198.18.0.1:80"},
				"VS":   {"ipvsadm -D -t 198.18.0.1:80"},
				"FULL": {"ipvsadm -D -t 198.18.0.1:80"},
			}[mode]
			if diff := cmp.Diff(wantStop, lines(h.out.String())); diff != "" {
				t.Fatalf("stop (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(foreignDump, foreignOnly(tableDump(t, h.dry))); diff != "" {
				t.Fatalf("foreign service changed:\n%s", diff)
			}
		})
	}
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestReconcilerDuplicateDestinations(t *testing.T) {
	// Two DR real servers on one address map to the same destination
	// (the service port): the first wins, as keepalived's EEXIST would.
	a, b := realServer("198.18.1.1", 8080, 2), realServer("198.18.1.1", 8081, 3)
	a.Method, b.Method = config.DR, config.DR
	vs := virtualServer("198.18.0.1", 80, a, b)
	h := newHarness(t, configOf(vs))
	got := h.pass()
	if !slices.Contains(got, "ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.1:80 -g -w 2") || len(got) != 2 {
		t.Fatalf("got %q", got)
	}
}

// foreignOnly keeps the lines of the foreign service 198.18.0.99:80.
func foreignOnly(dump []string) []string {
	return slices.DeleteFunc(dump, func(l string) bool { return !strings.Contains(l, "198.18.0.99:80") })
}

func TestApplyWritesChangesWithoutReading(t *testing.T) {
	vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1))
	h := newHarness(t, configOf(vs))
	h.pass()
	reads := h.r.Stats().Reads

	h.r.SetHealth(key(vs, 0), false)
	h.out.Reset()
	mustNil(t, h.r.Apply(t.Context()))
	if diff := cmp.Diff([]string{"ipvsadm -d -t 198.18.0.1:80 -r 198.18.1.1:80"}, lines(h.out.String())); diff != "" {
		t.Fatalf("Apply (-want +got):\n%s", diff)
	}
	if got := h.r.Stats().Reads; got != reads {
		t.Fatalf("Apply read the table (%d reads)", got-reads)
	}

	// Drift is invisible to Apply and repaired by the next Reconcile.
	mustNil(t, h.dry.DeleteDestination(t.Context(), vs.Services[0], Destination{Addr: netip.MustParseAddr("198.18.1.2"), Port: 80}))
	h.out.Reset()
	mustNil(t, h.r.Apply(t.Context()))
	if got := lines(h.out.String()); len(got) != 0 {
		t.Fatalf("Apply wrote %q", got)
	}
	if diff := cmp.Diff([]string{"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.2:80 -m -w 1"}, h.pass()); diff != "" {
		t.Fatalf("Reconcile (-want +got):\n%s", diff)
	}
}

func TestReconcilerSetsTimeoutsOnceAndOnReload(t *testing.T) {
	vs := virtualServer("198.18.0.1", 80)
	cfg := configOf(vs)
	cfg.Global.LVSTimeoutTCP, cfg.Global.LVSTimeoutTCPFin, cfg.Global.LVSTimeoutUDP = 900e9, 120e9, 300e9
	h := newHarness(t, cfg)
	runSteps(t, h, []step{
		{"start", nil, []string{"ipvsadm -A -t 198.18.0.1:80 -s wlc", "ipvsadm --set 900 120 300"}},
		{"reload with another tcp timeout", func(h *harness) {
			cfg2 := configOf(virtualServer("198.18.0.1", 80))
			cfg2.Global = cfg.Global
			cfg2.Global.LVSTimeoutTCP = 600e9
			h.r.Update(cfg2)
		}, []string{"ipvsadm --set 600 120 300"}},
		{"reload without timeouts: left as they are", func(h *harness) { h.r.Update(configOf(virtualServer("198.18.0.1", 80))) }, nil},
	})
}
