package loader

import (
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// statusValue returns the value of metric name with the given label
// values from a fresh StatusCollector, or -1 when there is no such series.
func statusValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewStatusCollector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
		t.Fatalf("lint: %v %v", probs, err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestStatusCollector loads the real SYN-probe receiver, attaches it to a
// veth in a fresh network namespace and closes it, reading the status
// metrics at each step.
func TestStatusCollector(t *testing.T) {
	s := mustLoad(t, RingBuffer)
	prog := map[string]string{"program": synprobeName}
	if got := statusValue(t, "lvsprobe_bpf_program_loaded", prog); got != 1 {
		t.Fatalf("loaded after load = %v, want 1", got)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	defer netns.Set(orig)
	la := netlink.NewLinkAttrs()
	la.Name = "lvsps0"
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "lvsps1"}); err != nil {
		t.Fatal(err)
	}
	l, err := netlink.LinkByName("lvsps0")
	if err != nil {
		t.Fatal(err)
	}
	hook := map[string]string{"program": synprobeName}
	before := max(statusValue(t, "lvsprobe_bpf_program_attachments", map[string]string{"program": synprobeName, "hook": "tcx"}), 0) +
		max(statusValue(t, "lvsprobe_bpf_program_attachments", map[string]string{"program": synprobeName, "hook": "clsact"}), 0)
	how, err := s.Attach(l.Attrs().Index)
	if err != nil {
		t.Fatal(err)
	}
	hook["hook"] = how
	if got := statusValue(t, "lvsprobe_bpf_program_attachments", hook); got != before+1 {
		t.Fatalf("attachments{hook=%q} after attach = %v, want %v", how, got, before+1)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := statusValue(t, "lvsprobe_bpf_program_attachments", hook); got != before {
		t.Fatalf("attachments{hook=%q} after close = %v, want %v", how, got, before)
	}
	if got := statusValue(t, "lvsprobe_bpf_program_loaded", prog); got != 0 {
		t.Fatalf("loaded after close = %v, want 0", got)
	}
}

// TestStatusLoadFailure checks that a failed load is counted and shows
// as not loaded.
func TestStatusLoadFailure(t *testing.T) {
	recordLoad("test_prog", false)
	if got := statusValue(t, "lvsprobe_bpf_program_loaded", map[string]string{"program": "test_prog"}); got != 0 {
		t.Fatalf("loaded = %v, want 0", got)
	}
	if got := statusValue(t, "lvsprobe_bpf_program_load_failures_total", map[string]string{"program": "test_prog"}); got != 1 {
		t.Fatalf("failures = %v, want 1", got)
	}
}
