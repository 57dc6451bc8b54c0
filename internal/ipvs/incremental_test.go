package ipvs

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// randomConfigKind shapes the random configurations of
// TestIncrementalPassesMatchFullPasses.
type randomConfigKind struct {
	name     string
	quorum   bool // quorum above 1, hysteresis
	sorry    bool // sorry servers (some sorry_server_inhibit, some on a real server's address)
	inhibit  bool // inhibit_on_failure on some real servers
	alpha    bool // alpha checkers on some real servers
	shared   bool // virtual servers that share a service (a group naming another's address)
	dr       bool // some real servers forwarded by DR
	weighted bool // SetWeight calls besides SetHealth
}

// randomConfig returns 1–4 virtual servers of 1–6 real servers drawn
// from a small pool of addresses, so that real servers of virtual servers
// sharing a service collide.
func randomConfig(rng *rand.Rand, k randomConfigKind) *config.Config {
	cfg := &config.Config{}
	nVS := 1 + rng.IntN(4)
	var keys []config.ServiceKey
	for v := range nVS {
		vip := netip.AddrFrom4([4]byte{198, 18, 0, byte(1 + v)})
		own := config.ServiceKey{Protocol: config.TCP, Addr: vip, Port: 80, Family: "inet"}
		vs := &config.VirtualServer{
			Addr: vip, Port: 80, Family: "inet", Protocol: config.TCP,
			Services: []config.ServiceKey{own}, Scheduler: "wlc", Method: config.NAT, Quorum: 1,
		}
		if k.shared && v > 0 && rng.IntN(2) == 0 {
			vs.Group = fmt.Sprintf("g%d", v)
			vs.Services = append(vs.Services, keys[rng.IntN(len(keys))])
		}
		keys = append(keys, own)
		pool := rng.Perm(8)
		total := 0
		for i := range 1 + rng.IntN(6) {
			a := netip.AddrFrom4([4]byte{198, 18, 1, byte(1 + pool[i])})
			rs := realServer(a.String(), 8080, rng.IntN(5))
			total += rs.Weight
			if k.inhibit && rng.IntN(2) == 0 {
				rs.InhibitOnFailure = true
			}
			if k.alpha && rng.IntN(3) == 0 {
				rs.Checkers[0].Alpha = true
			}
			if k.dr && rng.IntN(3) == 0 {
				rs.Method = config.DR
			}
			vs.RealServers = append(vs.RealServers, rs)
		}
		if k.quorum {
			vs.Quorum = 1 + rng.IntN(max(total, 1)+1)
			vs.Hysteresis = rng.IntN(3)
		}
		if k.sorry && rng.IntN(3) > 0 {
			ss := &config.SorryServer{Addr: netip.MustParseAddr("198.18.2.1"), Port: 8080}
			if rng.IntN(4) == 0 {
				ss.Addr = vs.RealServers[0].Addr // keepalived's s_svr_duplicates_rs
			}
			vs.SorryServer = ss
			vs.SorryServerInhibit = rng.IntN(2) == 0
		}
		cfg.VirtualServers = append(cfg.VirtualServers, vs)
	}
	return cfg
}

// cacheDump returns a table as tableDump prints a backend's.
func cacheDump(t table) []string {
	var out []string
	for _, id := range sortedServiceIDs(t) {
		ts := t[id]
		out = append(out, ipvsadmServiceCmd("-A", ts.svc))
		keys := slices.SortedFunc(func(yield func(destKey) bool) {
			for k := range ts.dests {
				if !yield(k) {
					return
				}
			}
		}, compareDestKeys)
		for _, k := range keys {
			d, _ := ts.dests.get(k)
			out = append(out, ipvsadmDestCmd("-a", ts.svc.ServiceKey, d))
		}
	}
	return out
}

// TestIncrementalPassesMatchFullPasses drives two reconcilers through
// the same random series of health and weight changes: one applies each
// batch with an incremental pass (Apply, from its cache), the other with
// a full pass that reads the table (Reconcile). After every pass their
// tables, desired weights, quorum states and quorum reports must be the
// same, the incremental one's cache must be its table, and it must not
// have read the table or built a full pass.
func TestIncrementalPassesMatchFullPasses(t *testing.T) {
	kinds := []randomConfigKind{
		{name: "weights"},
		{name: "quorum", quorum: true, weighted: true},
		{name: "sorry", quorum: true, sorry: true},
		{name: "sorry_inhibit", quorum: true, sorry: true, inhibit: true, weighted: true},
		{name: "alpha", alpha: true, inhibit: true},
		{name: "shared_services", shared: true, quorum: true, sorry: true, inhibit: true, dr: true},
		{name: "everything", quorum: true, sorry: true, inhibit: true, alpha: true, shared: true, dr: true, weighted: true},
	}
	const seeds, steps = 8, 60
	for _, k := range kinds {
		for seed := range uint64(seeds) {
			t.Run(fmt.Sprintf("%s/seed%d", k.name, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 0x1b5))
				cfg := randomConfig(rng, k)
				inc, full := newHarness(t, cfg), newHarness(t, cfg)
				var incQ, fullQ []QuorumChange
				inc.r.OnQuorum(func(c QuorumChange) { incQ = append(incQ, c) })
				full.r.OnQuorum(func(c QuorumChange) { fullQ = append(fullQ, c) })
				mustNil(t, inc.r.Apply(t.Context())) // the first pass is full: nothing cached
				mustNil(t, full.r.Reconcile(t.Context()))
				reads := inc.r.Stats().Reads
				var rss []config.RealServerKey
				for _, vs := range cfg.VirtualServers {
					for _, rs := range vs.RealServers {
						rss = append(rss, rs.Key(vs))
					}
				}
				for step := range steps {
					var did []string
					for range 1 + rng.IntN(3) {
						key := rss[rng.IntN(len(rss))]
						if k.weighted && rng.IntN(4) == 0 {
							w := rng.IntN(5)
							inc.r.SetWeight(key, w)
							full.r.SetWeight(key, w)
							did = append(did, fmt.Sprintf("weight %v %d", key, w))
							continue
						}
						up := rng.IntN(2) == 0
						inc.r.SetHealth(key, up)
						full.r.SetHealth(key, up)
						did = append(did, fmt.Sprintf("health %v %v", key, up))
					}
					mustNil(t, inc.r.Apply(t.Context()))
					mustNil(t, full.r.Reconcile(t.Context()))

					where := fmt.Sprintf("step %d %q", step, did)
					want := tableDump(t, full.dry)
					if diff := cmp.Diff(want, tableDump(t, inc.dry)); diff != "" {
						t.Fatalf("%s: table (-full +incremental):\n%s", where, diff)
					}
					if diff := cmp.Diff(want, cacheDump(inc.r.cache)); diff != "" {
						t.Fatalf("%s: incremental cache (-table +cache):\n%s", where, diff)
					}
					if diff := cmp.Diff(full.r.Weights(), inc.r.Weights()); diff != "" {
						t.Fatalf("%s: Weights (-full +incremental):\n%s", where, diff)
					}
					if diff := cmp.Diff(fullQ, incQ); diff != "" {
						t.Fatalf("%s: quorum reports (-full +incremental):\n%s", where, diff)
					}
					for _, vs := range cfg.VirtualServers {
						fu, fk := full.r.QuorumUp(vs.ID())
						iu, ik := inc.r.QuorumUp(vs.ID())
						if fu != iu || fk != ik {
							t.Fatalf("%s: quorum of %s: full %v/%v, incremental %v/%v", where, vs.ID(), fu, fk, iu, ik)
						}
					}
					st := inc.r.Stats()
					if st.Reads != reads {
						t.Fatalf("%s: the incremental reconciler read the table (%d reads)", where, st.Reads-reads)
					}
					if st.Partial != uint64(step+1) || st.Passes != st.Partial+1 {
						t.Fatalf("%s: %d passes, %d incremental; want every pass after the first incremental", where, st.Passes, st.Partial)
					}
				}
			})
		}
	}
}

// TestIncrementalPassWritesOnlyTheChange: on a converged table of three
// virtual servers, an incremental pass after one change issues exactly
// the operations that change calls for, reads nothing, and leaves the
// other virtual servers' destinations alone.
func TestIncrementalPassWritesOnlyTheChange(t *testing.T) {
	build := func() *config.Config {
		var vss []*config.VirtualServer
		for v := range 3 {
			vip := fmt.Sprintf("198.18.0.%d", 1+v)
			var rss []*config.RealServer
			for i := range 4 {
				rss = append(rss, realServer(fmt.Sprintf("198.18.1.%d", 1+i), 8080, 1+i))
			}
			vss = append(vss, virtualServer(vip, 80, rss...))
		}
		vss[1].RealServers[2].InhibitOnFailure = true
		vss[2].Quorum = 8
		vss[2].SorryServer = &config.SorryServer{Addr: netip.MustParseAddr("198.18.2.1"), Port: 8080}
		return configOf(vss...)
	}
	const vs1, vs2 = "-t 198.18.0.2:80", "-t 198.18.0.3:80"
	tests := []struct {
		name   string
		change func(r *Reconciler, cfg *config.Config)
		want   []string
	}{{
		name:   "a real server goes down",
		change: func(r *Reconciler, cfg *config.Config) { r.SetHealth(key(cfg.VirtualServers[1], 0), false) },
		want:   []string{"ipvsadm -d " + vs1 + " -r 198.18.1.1:8080"},
	}, {
		name:   "an inhibit_on_failure real server goes down",
		change: func(r *Reconciler, cfg *config.Config) { r.SetHealth(key(cfg.VirtualServers[1], 2), false) },
		want:   []string{"ipvsadm -e " + vs1 + " -r 198.18.1.3:8080 -m -w 0"},
	}, {
		name:   "a check sets a weight",
		change: func(r *Reconciler, cfg *config.Config) { r.SetWeight(key(cfg.VirtualServers[1], 3), 9) },
		want:   []string{"ipvsadm -e " + vs1 + " -r 198.18.1.4:8080 -m -w 9"},
	}, {
		name: "two virtual servers change",
		change: func(r *Reconciler, cfg *config.Config) {
			r.SetHealth(key(cfg.VirtualServers[0], 1), false)
			r.SetHealth(key(cfg.VirtualServers[1], 1), false)
		},
		want: []string{"ipvsadm -d -t 198.18.0.1:80 -r 198.18.1.2:8080", "ipvsadm -d " + vs1 + " -r 198.18.1.2:8080"},
	}, {
		name: "quorum lost: the sorry server replaces that virtual server's real servers",
		change: func(r *Reconciler, cfg *config.Config) {
			r.SetHealth(key(cfg.VirtualServers[2], 3), false) // 10 -> 6, under quorum 8
		},
		want: []string{
			"ipvsadm -d " + vs2 + " -r 198.18.1.1:8080",
			"ipvsadm -d " + vs2 + " -r 198.18.1.2:8080",
			"ipvsadm -d " + vs2 + " -r 198.18.1.3:8080",
			"ipvsadm -d " + vs2 + " -r 198.18.1.4:8080",
			"ipvsadm -a " + vs2 + " -r 198.18.2.1:8080 -m -w 1",
		},
	}, {
		name:   "a check confirms what the table holds",
		change: func(r *Reconciler, cfg *config.Config) { r.SetHealth(key(cfg.VirtualServers[0], 0), true) },
	}, {
		name: "a real server the configuration does not have",
		change: func(r *Reconciler, cfg *config.Config) {
			r.SetHealth(config.RealServerKey{VirtualServer: "198.18.0.9:80 TCP", Addr: netip.MustParseAddr("198.18.1.1"), Port: 8080}, false)
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := build()
			h := newHarness(t, cfg)
			h.pass()
			before := h.r.Stats()
			h.out.Reset()
			tt.change(h.r, cfg)
			mustNil(t, h.r.Apply(t.Context()))
			if diff := cmp.Diff(tt.want, lines(h.out.String())); diff != "" {
				t.Fatalf("commands (-want +got):\n%s", diff)
			}
			after := h.r.Stats()
			if after.Reads != before.Reads {
				t.Errorf("the pass read the table (%d reads)", after.Reads-before.Reads)
			}
			if w := after.Writes() - before.Writes(); w != uint64(len(tt.want)) {
				t.Errorf("%d writes counted, want %d", w, len(tt.want))
			}
			if after.Partial != before.Partial+1 {
				t.Errorf("the pass was not incremental")
			}
			// A full pass that reads the table agrees: nothing left to write.
			if again := h.pass(); len(again) != 0 {
				t.Errorf("a full pass after it issued %q", again)
			}
		})
	}
}

// TestIncrementalPassesGiveWayToFullOnes: a reload, a pending retry and
// a read make the next pass a full one; after a clean full pass,
// passes are incremental again.
func TestIncrementalPassesGiveWayToFullOnes(t *testing.T) {
	vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 8080, 1), realServer("198.18.1.2", 8080, 1))
	cfg := configOf(vs)
	h := newHarness(t, cfg)
	h.pass()
	partial := func() uint64 { return h.r.Stats().Partial }
	apply := func(wantPartial bool) {
		t.Helper()
		p := partial()
		_ = h.r.Apply(t.Context())
		if got := partial() > p; got != wantPartial {
			t.Fatalf("pass incremental: %v, want %v", got, wantPartial)
		}
	}
	h.r.SetHealth(key(vs, 0), false)
	apply(true)
	h.r.Update(cfg) // a reload
	h.r.SetHealth(key(vs, 0), true)
	apply(false)
	h.r.SetHealth(key(vs, 0), false)
	apply(true)

	// A write that fails: the cache is dropped, then the target backs off.
	fail := true
	f := newFaulty(h.dry, func(op OpKind, _ config.ServiceKey, _ Destination) error {
		if fail && op == OpAddDestination {
			return fmt.Errorf("injected")
		}
		return nil
	})
	h.r.b = f
	h.r.SetHealth(key(vs, 0), true)
	apply(true) // fails its write
	apply(false)
	fail = false
	h.clock.advance(2 * h.r.retry.base)
	apply(false) // the retry succeeds
	h.r.SetHealth(key(vs, 1), false)
	apply(true)
	if diff := cmp.Diff([]string{
		"ipvsadm -A -t 198.18.0.1:80 -s wlc",
		"ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.1:8080 -m -w 1",
	}, tableDump(t, h.dry)); diff != "" {
		t.Fatalf("table (-want +got):\n%s", diff)
	}
}
