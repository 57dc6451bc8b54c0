package loader

import (
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// status is what this process has loaded into the kernel and attached,
// by program name ("synprobe", ...): the loader records it as it goes and
// [StatusCollector] exports it.
var status = struct {
	mu    sync.Mutex
	progs map[string]*programStatus
}{progs: map[string]*programStatus{}}

type programStatus struct {
	loaded   int            // loaded instances not yet closed
	attached map[string]int // attachments by hook (tcx, clsact, tracepoint, ...)
	failures uint64         // loads that failed
}

// programLocked returns the entry of name; status.mu is held.
func programLocked(name string) *programStatus {
	p := status.progs[name]
	if p == nil {
		p = &programStatus{attached: map[string]int{}}
		status.progs[name] = p
	}
	return p
}

// recordLoad records a load of program name that succeeded (ok) or failed.
func recordLoad(name string, ok bool) {
	status.mu.Lock()
	defer status.mu.Unlock()
	p := programLocked(name)
	if ok {
		p.loaded++
	} else {
		p.failures++
	}
}

// recordClose records that a loaded instance of name was closed, with
// its attachments.
func recordClose(name string) {
	status.mu.Lock()
	defer status.mu.Unlock()
	p := programLocked(name)
	p.loaded = max(p.loaded-1, 0)
}

// recordAttach adds delta attachments of name on hook.
func recordAttach(name, hook string, delta int) {
	status.mu.Lock()
	defer status.mu.Unlock()
	p := programLocked(name)
	p.attached[hook] = max(p.attached[hook]+delta, 0)
}

// StatusCollector exports the status of the eBPF programs this process
// loaded (names get the lvsprobe_bpf_ prefix). A program never tried has
// no series; one whose load failed is loaded 0 with its failures counted.
type StatusCollector struct {
	loaded, attached, failures *prometheus.Desc
}

var _ prometheus.Collector = (*StatusCollector)(nil)

// NewStatusCollector returns a collector of the loader's program status.
func NewStatusCollector() *StatusCollector {
	return &StatusCollector{
		loaded: prometheus.NewDesc("lvsprobe_bpf_program_loaded",
			"1 while the eBPF program is loaded in the kernel, 0 when its load failed or it was closed (lvsprobe then runs without it).",
			[]string{"program"}, nil),
		attached: prometheus.NewDesc("lvsprobe_bpf_program_attachments",
			"Interfaces or hooks the eBPF program is attached to now, by attach mechanism (tcx, clsact, ...).",
			[]string{"program", "hook"}, nil),
		failures: prometheus.NewDesc("lvsprobe_bpf_program_load_failures_total",
			"eBPF program loads that failed (verifier rejection, missing kernel feature or privilege).",
			[]string{"program"}, nil),
	}
}

// Describe sends every metric description.
func (c *StatusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.loaded
	ch <- c.attached
	ch <- c.failures
}

// Collect sends the current status.
func (c *StatusCollector) Collect(ch chan<- prometheus.Metric) {
	status.mu.Lock()
	defer status.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(status.progs)) {
		p := status.progs[name]
		loaded := 0.0
		if p.loaded > 0 {
			loaded = 1
		}
		ch <- prometheus.MustNewConstMetric(c.loaded, prometheus.GaugeValue, loaded, name)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(p.failures), name)
		for _, hook := range slices.Sorted(maps.Keys(p.attached)) {
			ch <- prometheus.MustNewConstMetric(c.attached, prometheus.GaugeValue, float64(p.attached[hook]), name, hook)
		}
	}
}
