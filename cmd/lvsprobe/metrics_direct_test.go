package main

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lvsprobe/lvsprobe/internal/metricfam"
	"github.com/lvsprobe/lvsprobe/internal/metricfam/metricfamtest"
)

// fakeDirect is a directCollector whose direct family is name and that
// describes desc (name if empty).
type fakeDirect struct {
	name, desc string
	switched   bool
}

func (f *fakeDirect) Describe(ch chan<- *prometheus.Desc) {
	d := f.desc
	if d == "" {
		d = f.name
	}
	ch <- prometheus.NewDesc(d, d, nil, nil)
}
func (f *fakeDirect) Collect(chan<- prometheus.Metric) {}
func (f *fakeDirect) DirectGatherer() prometheus.Gatherer {
	f.switched = true
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		v := 1.0
		return []*dto.MetricFamily{{Name: &f.name, Help: &f.name, Type: dto.MetricType_GAUGE.Enum(),
			Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &v}}}}}, nil
	})
}

// familyNames returns the names reg gathers, and its error.
func familyNames(reg prometheus.Gatherer) ([]string, error) {
	mfs, err := reg.Gather()
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	return names, err
}

// TestMetricsRegistryDirect checks that a directCollector's families
// are served while it is registered, in name order among the registry's,
// and no longer once it is unregistered.
func TestMetricsRegistryDirect(t *testing.T) {
	reg := newMetricsRegistry()
	d := &fakeDirect{name: "lvsprobe_zz_direct"}
	reg.MustRegister(d)
	if !d.switched {
		t.Fatal("Register did not call DirectGatherer")
	}
	names, err := familyNames(reg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(names, d.name) || !slices.Contains(names, "lvsprobe_build_info") || !slices.IsSorted(names) {
		t.Fatalf("families %v: want the registry's and %s, sorted", names, d.name)
	}
	if !reg.Unregister(d) {
		t.Fatal("Unregister: not registered")
	}
	names, err = familyNames(reg)
	if err != nil || slices.Contains(names, d.name) {
		t.Fatalf("after Unregister: %v %v", names, err)
	}
}

// TestMetricsRegistryDirectClash checks that a direct family named like
// one of the registry's is an error, not a duplicate family.
func TestMetricsRegistryDirectClash(t *testing.T) {
	reg := newMetricsRegistry()
	reg.MustRegister(&fakeDirect{name: "lvsprobe_build_info", desc: "lvsprobe_other"})
	names, err := familyNames(reg)
	if err == nil {
		t.Fatal("no error for a family gathered twice")
	}
	n := 0
	for _, name := range names {
		if name == "lvsprobe_build_info" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("lvsprobe_build_info gathered %d times", n)
	}
}

// TestMetricsRegistryStreamed checks that the daemon's /metrics handler
// (metricfam.Handler over a metricsRegistry) serves, byte for byte,
// what promhttp serves for the same registry, in every format and
// encoding, a direct family among the registry's. The process and Go
// collectors are left out: their values change between two gathers.
func TestMetricsRegistryStreamed(t *testing.T) {
	reg := &metricsRegistry{Registry: prometheus.NewPedanticRegistry(), direct: map[prometheus.Collector]func(){}}
	reg.merged = metricfam.NewMerged(reg.Registry)
	reg.MustRegister(buildInfo(), &fakeDirect{name: "lvsprobe_c_direct"}, &fakeDirect{name: "lvsprobe_zz_direct"})
	if err := metricfamtest.Compare(reg, "lvsprobe_zz_direct"); err != nil {
		t.Fatal(err)
	}
	if err := metricfamtest.Compare(metricfamtest.Reorder(reg, false), ""); err == nil {
		t.Fatal("Compare found no difference with two families swapped")
	}
}
