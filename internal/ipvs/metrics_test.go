package ipvs

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	vs := virtualServer("198.18.0.1", 80, realServer("198.18.1.1", 80, 1), realServer("198.18.1.2", 80, 1))
	vs.Quorum = 2
	h := newHarness(t, configOf(vs))
	h.pass()
	h.r.SetHealth(key(vs, 0), false)
	h.pass()

	reg := prometheus.NewPedanticRegistry()
	mustNil(t, reg.Register(NewCollector(h.r)))
	want := `
# HELP lvsprobe_ipvs_operations_total IPVS writes that succeeded, by kind (add_service, update_service, delete_service, add_destination, update_destination, delete_destination, set_timeouts).
# TYPE lvsprobe_ipvs_operations_total counter
lvsprobe_ipvs_operations_total{kind="add_destination"} 2
lvsprobe_ipvs_operations_total{kind="add_service"} 1
lvsprobe_ipvs_operations_total{kind="delete_destination"} 1
lvsprobe_ipvs_operations_total{kind="delete_service"} 0
lvsprobe_ipvs_operations_total{kind="set_timeouts"} 0
lvsprobe_ipvs_operations_total{kind="update_destination"} 0
lvsprobe_ipvs_operations_total{kind="update_service"} 0
# HELP lvsprobe_ipvs_quorum_up 1 when the virtual server has quorum, 0 when it has lost it.
# TYPE lvsprobe_ipvs_quorum_up gauge
lvsprobe_ipvs_quorum_up{virtual_server="TCP 198.18.0.1:80"} 0
# HELP lvsprobe_ipvs_passes_total Reconcile passes run.
# TYPE lvsprobe_ipvs_passes_total counter
lvsprobe_ipvs_passes_total 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"lvsprobe_ipvs_operations_total", "lvsprobe_ipvs_quorum_up", "lvsprobe_ipvs_passes_total"); err != nil {
		t.Fatal(err)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) != 0 {
		t.Fatalf("lint: %v %v", probs, err)
	}
}
