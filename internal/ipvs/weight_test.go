package ipvs

import (
	"net/netip"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestReconcilerSetWeight: a weight set by checks (misc_dynamic,
// FILE_CHECK) replaces the configured one in the table and in the quorum
// sum; inhibit_on_failure still zeroes a dead server; the weight survives
// down and up.
func TestReconcilerSetWeight(t *testing.T) {
	const svc = "-t 198.18.0.1:80"
	a, b := realServer("198.18.1.1", 80, 3), realServer("198.18.1.2", 80, 1)
	b.InhibitOnFailure = true
	vs := virtualServer("198.18.0.1", 80, a, b)
	vs.Quorum = 4
	vs.SorryServer = &config.SorryServer{Addr: netip.MustParseAddr("198.18.2.1"), Port: 80}
	h := newHarness(t, configOf(vs))
	runSteps(t, h, []step{
		{"start: quorum 3+1 >= 4", nil, []string{
			"ipvsadm -A " + svc + " -s wlc",
			"ipvsadm -a " + svc + " -r 198.18.1.1:80 -m -w 3",
			"ipvsadm -a " + svc + " -r 198.18.1.2:80 -m -w 1",
		}},
		{"misc_dynamic asks 10", func(h *harness) { h.r.SetWeight(key(vs, 0), 10) }, []string{
			"ipvsadm -e " + svc + " -r 198.18.1.1:80 -m -w 10",
		}},
		{"same weight again: nothing", func(h *harness) { h.r.SetWeight(key(vs, 0), 10) }, nil},
		{"FILE_CHECK takes b to 0: quorum 10 still holds", func(h *harness) { h.r.SetWeight(key(vs, 1), 0) }, []string{
			"ipvsadm -e " + svc + " -r 198.18.1.2:80 -m -w 0",
		}},
		{"a weight below 0 is 0, above 65535 is 65535", func(h *harness) {
			h.r.SetWeight(key(vs, 0), -5)
			h.r.SetWeight(key(vs, 1), 70000)
		}, []string{
			"ipvsadm -e " + svc + " -r 198.18.1.1:80 -m -w 0",
			"ipvsadm -e " + svc + " -r 198.18.1.2:80 -m -w 65535",
		}},
		{"b down: inhibited to 0, quorum lost, sorry server in", func(h *harness) { h.r.SetHealth(key(vs, 1), false) }, []string{
			"ipvsadm -d " + svc + " -r 198.18.1.1:80",
			"ipvsadm -e " + svc + " -r 198.18.1.2:80 -m -w 0",
			"ipvsadm -a " + svc + " -r 198.18.2.1:80 -m -w 1",
		}},
		{"b up with its weight, a back to 3", func(h *harness) {
			h.r.SetHealth(key(vs, 1), true)
			h.r.SetWeight(key(vs, 0), 3)
		}, []string{
			"ipvsadm -d " + svc + " -r 198.18.2.1:80",
			"ipvsadm -e " + svc + " -r 198.18.1.2:80 -m -w 65535",
			"ipvsadm -a " + svc + " -r 198.18.1.1:80 -m -w 3",
		}},
	})
}
