package loader

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPassiveMetrics: the collector passes the pedantic registry and
// promlint, exports the per-real-server counters the programs kept, and
// unregisters on Close.
func TestPassiveMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	p := mustLoadPassive(t, PassiveOptions{Registerer: reg})
	if err := p.SetRealServers([]netip.AddrPort{rs4}); err != nil {
		t.Fatal(err)
	}
	egress, ingress := p.Programs()
	run(t, egress, pkt{src: client4, dst: rs4, flags: fSYN}.build())
	run(t, ingress, pkt{src: rs4, dst: client4, flags: fSYNACK}.build())
	run(t, ingress, pkt{src: rs4, dst: client4, flags: fRST}.build())
	run(t, egress, pkt{src: client4, dst: rs4, flags: fSYN, ipProto: 17}.build())

	if _, err := reg.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
	problems, err := testutil.CollectAndLint(p.collector)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("lint: %s: %s", pr.Metric, pr.Text)
	}
	want := `
# HELP lvsprobe_passive_client_resets_total RSTs from the real server to clients (TC ingress).
# TYPE lvsprobe_passive_client_resets_total counter
lvsprobe_passive_client_resets_total{real_server="198.18.7.2:80"} 1
# HELP lvsprobe_passive_client_synacks_total SYN-ACKs from the real server (TC ingress; NAT only).
# TYPE lvsprobe_passive_client_synacks_total counter
lvsprobe_passive_client_synacks_total{real_server="198.18.7.2:80"} 1
# HELP lvsprobe_passive_packets_skipped_total Packets passed uncounted, by reason.
# TYPE lvsprobe_passive_packets_skipped_total counter
lvsprobe_passive_packets_skipped_total{reason="fragment"} 0
lvsprobe_passive_packets_skipped_total{reason="ipv6_ext_header"} 0
lvsprobe_passive_packets_skipped_total{reason="not_ip"} 0
lvsprobe_passive_packets_skipped_total{reason="not_tcp"} 1
lvsprobe_passive_packets_skipped_total{reason="truncated"} 0
lvsprobe_passive_packets_skipped_total{reason="unknown_real_server"} 0
# HELP lvsprobe_passive_programs_up Whether a part of the passive observer runs (1) or not (0).
# TYPE lvsprobe_passive_programs_up gauge
lvsprobe_passive_programs_up{part="tc"} 1
lvsprobe_passive_programs_up{part="tracepoints"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"lvsprobe_passive_client_resets_total", "lvsprobe_passive_client_synacks_total",
		"lvsprobe_passive_packets_skipped_total", "lvsprobe_passive_programs_up"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "lvsprobe_passive_client_handshake_seconds"); err != nil || n != 1 {
		t.Errorf("handshake histograms = %d, %v", n, err)
	}
	p.Close()
	if n, _ := testutil.GatherAndCount(reg); n != 0 {
		t.Errorf("%d metrics after Close", n)
	}
}
