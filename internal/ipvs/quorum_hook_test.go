package ipvs

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestQuorumHook checks which quorum changes are reported, pass by pass,
// against keepalived's update_quorum_state.
func TestQuorumHook(t *testing.T) {
	type step struct {
		name string
		do   func(h *harness, vs *config.VirtualServer)
		want []QuorumChange // the changes of the pass after do
	}
	var id string
	tests := []struct {
		name  string
		build func() *config.VirtualServer
		steps []step
	}{{
		name: "no sorry server: up at start, then every change",
		build: func() *config.VirtualServer {
			vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1))
			vs.Quorum = 2
			return vs
		},
		steps: []step{
			{"start", nil, []QuorumChange{{Up: true, Start: true, Weight: 2}}},
			{"first verdicts agree", func(h *harness, vs *config.VirtualServer) { h.r.SetHealth(key(vs, 0), true) }, nil},
			{"one down: 1 < 2", func(h *harness, vs *config.VirtualServer) { h.r.SetHealth(key(vs, 0), false) }, []QuorumChange{{Up: false, Weight: 1}}},
			{"other down too: still lost", func(h *harness, vs *config.VirtualServer) { h.r.SetHealth(key(vs, 1), false) }, nil},
			{"both back", func(h *harness, vs *config.VirtualServer) {
				h.r.SetHealth(key(vs, 0), true)
				h.r.SetHealth(key(vs, 1), true)
			}, []QuorumChange{{Up: true, Weight: 2}}},
		},
	}, {
		name: "alpha without a sorry server: starting without quorum is not reported",
		build: func() *config.VirtualServer {
			rs := realServer("198.18.1.1", 80, 1)
			rs.Checkers[0].Alpha = true
			return virtualServer("198.18.0.1", 80, rs)
		},
		steps: []step{
			{"start", nil, nil},
			{"check passes", func(h *harness, vs *config.VirtualServer) { h.r.SetHealth(key(vs, 0), true) }, []QuorumChange{{Up: true, Weight: 1}}},
		},
	}, {
		name: "alpha with a sorry server: starting with quorum down is reported",
		build: func() *config.VirtualServer {
			rs := realServer("198.18.1.1", 80, 1)
			rs.Checkers[0].Alpha = true
			vs := virtualServer("198.18.0.1", 80, rs)
			vs.SorryServer = &config.SorryServer{Addr: netip.MustParseAddr("198.18.2.1"), Port: 80}
			return vs
		},
		steps: []step{
			{"start", nil, []QuorumChange{{Up: false, Start: true}}},
			{"check passes", func(h *harness, vs *config.VirtualServer) { h.r.SetHealth(key(vs, 0), true) }, []QuorumChange{{Up: true, Weight: 1}}},
		},
	}, {
		name: "hysteresis: inside the band nothing is reported",
		build: func() *config.VirtualServer {
			vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1),
				realServer("198.18.1.3", 80, 1), realServer("198.18.1.4", 80, 1))
			vs.Quorum, vs.Hysteresis = 3, 1 // lost below 2, regained at 4
			return vs
		},
		steps: []step{
			{"start: 4 >= 3+1", nil, []QuorumChange{{Up: true, Start: true, Weight: 4}}},
			{"3 alive", func(h *harness, vs *config.VirtualServer) { h.r.SetHealth(key(vs, 0), false) }, nil},
			{"2 alive", func(h *harness, vs *config.VirtualServer) { h.r.SetHealth(key(vs, 1), false) }, nil},
			{"1 alive: lost", func(h *harness, vs *config.VirtualServer) { h.r.SetHealth(key(vs, 2), false) }, []QuorumChange{{Up: false, Weight: 1}}},
			{"3 alive: not yet regained", func(h *harness, vs *config.VirtualServer) {
				h.r.SetHealth(key(vs, 0), true)
				h.r.SetHealth(key(vs, 1), true)
			}, nil},
			{"4 alive: regained", func(h *harness, vs *config.VirtualServer) { h.r.SetHealth(key(vs, 2), true) }, []QuorumChange{{Up: true, Weight: 4}}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := tt.build()
			id = vs.ID()
			h := newHarness(t, configOf(vs))
			var got []QuorumChange
			h.r.OnQuorum(func(c QuorumChange) { got = append(got, c) })
			for i, s := range tt.steps {
				if s.do != nil {
					s.do(h, vs)
				}
				got = nil
				h.pass()
				for j := range s.want {
					s.want[j].VirtualServer = id
				}
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Fatalf("step %d (%s): changes (-want +got):\n%s", i, s.name, diff)
				}
				got = nil
				if h.pass(); len(got) != 0 {
					t.Fatalf("step %d (%s): a second pass reported %+v", i, s.name, got)
				}
			}
		})
	}
}

// TestQuorumHookReload: a virtual server added by a reload gets its start
// report; the ones that stay report nothing new.
func TestQuorumHookReload(t *testing.T) {
	a := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1))
	h := newHarness(t, configOf(a))
	var got []QuorumChange
	h.r.OnQuorum(func(c QuorumChange) { got = append(got, c) })
	h.pass()
	if len(got) != 1 || got[0].VirtualServer != a.ID() || !got[0].Start {
		t.Fatalf("start: %+v", got)
	}
	b := virtualServer("198.18.0.2", 80, realServer("198.18.1.2", 80, 1))
	h.r.Update(configOf(a, b))
	got = nil
	h.pass()
	want := []QuorumChange{{VirtualServer: b.ID(), Up: true, Start: true, Weight: 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("reload (-want +got):\n%s", diff)
	}
	h.r.OnQuorum(nil)
	h.r.SetHealth(key(b, 0), false)
	got = nil
	h.pass()
	if len(got) != 0 {
		t.Fatalf("after OnQuorum(nil): %+v", got)
	}
}
