package ipvs

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestCollectorDestinations checks the per-destination series and their
// node_exporter labels: an address service with a healthy, an inhibited
// and a removed real server, a fwmark DR service, and an IPv6 service.
func TestCollectorDestinations(t *testing.T) {
	web := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 8080, 3), realServer("198.18.1.2", 8080, 2), realServer("198.18.1.3", 8080, 1))
	web.RealServers[1].InhibitOnFailure = true
	fwm := &config.VirtualServer{FWMark: 7, Family: "inet", Protocol: config.TCP, Scheduler: "rr", Method: config.DR, Quorum: 1,
		RealServers: []*config.RealServer{realServer("198.18.2.1", 443, 5)}}
	fwm.RealServers[0].Method = config.DR
	v6 := virtualServer("2001:db8::1", 53, realServer("2001:db8::10", 53, 1))
	h := newHarness(t, configOf(web, fwm, v6))
	h.pass()
	h.r.SetHealth(key(web, 1), false)
	h.r.SetHealth(key(web, 2), false)
	h.pass()

	reg := prometheus.NewPedanticRegistry()
	mustNil(t, reg.Register(NewCollector(h.r)))
	want := `
# HELP lvsprobe_ipvs_destination_weight Weight lvsprobe keeps the destination at in IPVS, for every destination of the services it owns (the desired table of the last reconcile pass; 0 under inhibit_on_failure; absent when the real server is out of the table). Labels join node_exporter's node_ipvs_backend_*.
# TYPE lvsprobe_ipvs_destination_weight gauge
lvsprobe_ipvs_destination_weight{local_address="",local_mark="00000007",local_port="0",proto="FWM",remote_address="198.18.2.1",remote_port="0"} 5
lvsprobe_ipvs_destination_weight{local_address="198.18.0.1",local_mark="",local_port="80",proto="TCP",remote_address="198.18.1.1",remote_port="8080"} 3
lvsprobe_ipvs_destination_weight{local_address="198.18.0.1",local_mark="",local_port="80",proto="TCP",remote_address="198.18.1.2",remote_port="8080"} 0
lvsprobe_ipvs_destination_weight{local_address="2001:db8::1",local_mark="",local_port="53",proto="TCP",remote_address="2001:db8::10",remote_port="53"} 1
# HELP lvsprobe_real_server_up 1 when the real server's health checks pass (or, before its first verdict, when it is assumed alive), 0 when they fail; one series per IPVS service the real server is configured under. Labels join node_exporter's node_ipvs_backend_*.
# TYPE lvsprobe_real_server_up gauge
lvsprobe_real_server_up{local_address="",local_mark="00000007",local_port="0",proto="FWM",remote_address="198.18.2.1",remote_port="0"} 1
lvsprobe_real_server_up{local_address="198.18.0.1",local_mark="",local_port="80",proto="TCP",remote_address="198.18.1.1",remote_port="8080"} 1
lvsprobe_real_server_up{local_address="198.18.0.1",local_mark="",local_port="80",proto="TCP",remote_address="198.18.1.2",remote_port="8080"} 0
lvsprobe_real_server_up{local_address="198.18.0.1",local_mark="",local_port="80",proto="TCP",remote_address="198.18.1.3",remote_port="8080"} 0
lvsprobe_real_server_up{local_address="2001:db8::1",local_mark="",local_port="53",proto="TCP",remote_address="2001:db8::10",remote_port="53"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "lvsprobe_ipvs_destination_weight", "lvsprobe_real_server_up"); err != nil {
		t.Fatal(err)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) != 0 {
		t.Fatalf("lint: %v %v", probs, err)
	}
}

// TestBackendLabelValues pins the label values to what node_exporter
// reads from /proc/net/ip_vs.
func TestBackendLabelValues(t *testing.T) {
	tests := []struct {
		name string
		k    config.ServiceKey
		addr string
		port uint16
		want string
	}{
		{"tcp", config.ServiceKey{Protocol: config.TCP, Addr: netip.MustParseAddr("198.18.0.1"), Port: 80}, "198.18.1.1", 80, "198.18.0.1|80|198.18.1.1|80|TCP|"},
		{"udp mapped", config.ServiceKey{Protocol: config.UDP, Addr: netip.MustParseAddr("::ffff:198.18.0.1"), Port: 53}, "::ffff:198.18.1.1", 53, "198.18.0.1|53|198.18.1.1|53|UDP|"},
		{"fwmark", config.ServiceKey{Protocol: config.TCP, FWMark: 0x1ab, Family: "inet"}, "198.18.1.1", 0, "|0|198.18.1.1|0|FWM|000001AB"},
		{"sctp v6", config.ServiceKey{Protocol: config.SCTP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 9}, "2001:db8::2", 9, "2001:db8::1|9|2001:db8::2|9|SCTP|"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(backendLabelValues(tt.k, netip.MustParseAddr(tt.addr), tt.port), "|")
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWeights checks the status snapshot against the same table.
func TestWeights(t *testing.T) {
	web := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 8080, 3), realServer("198.18.1.2", 8080, 2), realServer("198.18.1.3", 8080, 1))
	web.RealServers[1].InhibitOnFailure = true
	h := newHarness(t, configOf(web))
	if w := h.r.Weights(); w != nil {
		t.Fatalf("Weights before a pass = %v, want nil", w)
	}
	h.pass()
	h.r.SetHealth(key(web, 1), false)
	h.r.SetHealth(key(web, 2), false)
	h.pass()
	w := h.r.Weights()
	k := ServiceKeys(web)[0]
	tests := []struct {
		rs      int
		want    int
		present bool
	}{{0, 3, true}, {1, 0, true}, {2, 0, false}}
	for _, tt := range tests {
		got, ok := w[DestinationOf(web, web.RealServers[tt.rs], k)]
		if ok != tt.present || got != tt.want {
			t.Errorf("real server %d: weight %d present %v, want %d %v", tt.rs, got, ok, tt.want, tt.present)
		}
	}
	if len(w) != 2 {
		t.Errorf("%d destinations, want 2: %v", len(w), w)
	}
}
