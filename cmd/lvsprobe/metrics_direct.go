package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lvsprobe/lvsprobe/internal/ipvs"
	"github.com/lvsprobe/lvsprobe/internal/metricfam"
)

// directCollector is a collector whose per-real-server families can be
// built directly as metric families (ipvs.Collector, the passive
// observer's collector): DirectGatherer makes Collect leave them out and
// returns the Gatherer that builds them.
type directCollector interface {
	prometheus.Collector
	DirectGatherer() prometheus.Gatherer
}

var _ directCollector = (*ipvs.Collector)(nil)

// metricsRegistry is the daemon's registry: a prometheus.Registry whose
// Gather adds the families of the direct gatherers of the
// directCollectors registered on it. At 10,000 real servers the const
// metrics of those families made about 50 MB of garbage per scrape
// (docs/benchmarks.md §15, scrape).
type metricsRegistry struct {
	*prometheus.Registry
	merged *metricfam.Merged
	mu     sync.Mutex
	direct map[prometheus.Collector]func() // removes the collector's direct gatherer
}

var _ metricfam.LazyGatherer = (*metricsRegistry)(nil)

// newMetricsRegistry returns newRegistry's registry, serving the
// families of directCollectors directly.
func newMetricsRegistry() *metricsRegistry {
	r := &metricsRegistry{Registry: newRegistry(), direct: map[prometheus.Collector]func(){}}
	r.merged = metricfam.NewMerged(r.Registry)
	return r
}

// Register implements prometheus.Registerer.
func (r *metricsRegistry) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	if d, ok := c.(directCollector); ok {
		remove := r.merged.Add(d.DirectGatherer())
		r.mu.Lock()
		r.direct[c] = remove
		r.mu.Unlock()
	}
	return nil
}

// MustRegister implements prometheus.Registerer.
func (r *metricsRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister implements prometheus.Registerer.
func (r *metricsRegistry) Unregister(c prometheus.Collector) bool {
	if !r.Registry.Unregister(c) {
		return false
	}
	r.mu.Lock()
	remove, ok := r.direct[c]
	delete(r.direct, c)
	r.mu.Unlock()
	if ok {
		remove()
	}
	return true
}

// GatherLazy implements metricfam.LazyGatherer: what the streaming
// /metrics handler serves.
func (r *metricsRegistry) GatherLazy() ([]metricfam.Lazy, error) { return r.merged.GatherLazy() }

// Gather implements prometheus.Gatherer.
func (r *metricsRegistry) Gather() ([]*dto.MetricFamily, error) { return r.merged.Gather() }
