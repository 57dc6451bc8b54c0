package metricfam

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Merged is a prometheus.Gatherer that returns the families of a first
// gatherer (the registry) and of direct gatherers added later, sorted by
// name. Unlike prometheus.Gatherers it does not re-check and re-hash
// every series: the direct gatherers own their families outright, and a
// family name that two of them (or one and the registry) return is an
// error, its second copy left out.
type Merged struct {
	first  prometheus.Gatherer
	mu     sync.Mutex
	direct []*entry
}

// NewMerged returns a Merged gatherer of first and direct.
func NewMerged(first prometheus.Gatherer, direct ...prometheus.Gatherer) *Merged {
	m := &Merged{first: first}
	for _, g := range direct {
		m.direct = append(m.direct, &entry{g})
	}
	return m
}

// Add adds a direct gatherer and returns the function that removes it
// again; both are safe while scrapes run.
func (m *Merged) Add(g prometheus.Gatherer) (remove func()) {
	e := &entry{g}
	m.mu.Lock()
	m.direct = append(m.direct, e)
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		m.direct = slices.DeleteFunc(m.direct, func(x *entry) bool { return x == e })
		m.mu.Unlock()
	}
}

// entry is one direct gatherer, by identity (a GathererFunc is not
// comparable).
type entry struct{ g prometheus.Gatherer }

// Gather implements prometheus.Gatherer. The direct gatherers run
// first, so that what they count while reading (errors) is in the
// registry's families of the same scrape.
func (m *Merged) Gather() ([]*dto.MetricFamily, error) { return BuildAll(m.GatherLazy()) }
