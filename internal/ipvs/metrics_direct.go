package ipvs

import (
	"bufio"
	"net/netip"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/metricfam"
)

// Names and help of the per-destination families, shared by the
// collector's Descs and the direct gatherer.
const (
	destWeightName = "lvsprobe_ipvs_destination_weight"
	destWeightHelp = "Weight lvsprobe keeps the destination at in IPVS, for every destination of the services it owns (the desired table of the last reconcile pass; " +
		"0 under inhibit_on_failure; absent when the real server is out of the table). Labels join node_exporter's node_ipvs_backend_*."
	realServerUpName = "lvsprobe_real_server_up"
	realServerUpHelp = "1 when the real server's health checks pass (or, before its first verdict, when it is assumed alive), 0 when they fail; " +
		"one series per IPVS service the real server is configured under. Labels join node_exporter's node_ipvs_backend_*."
)

// backendKey is what a destination's BackendLabels values are made
// from: two keys are equal exactly when their label values are.
type backendKey struct {
	fwmark uint32
	proto  config.Protocol
	local  netip.Addr
	lport  uint16
	remote netip.Addr
	rport  uint16
}

// backendKeyOf returns the backendKey of destination addr:port of k.
func backendKeyOf(k config.ServiceKey, addr netip.Addr, port uint16) backendKey {
	b := backendKey{remote: addr.Unmap(), rport: port}
	if k.FWMark != 0 {
		b.fwmark = k.FWMark
	} else {
		b.proto, b.local, b.lport = k.Protocol, k.Addr.Unmap(), k.Port
	}
	return b
}

// values returns the BackendLabels values of b.
func (b backendKey) values() []string {
	if b.fwmark != 0 {
		return backendLabelValues(config.ServiceKey{FWMark: b.fwmark}, b.remote, b.rport)
	}
	return backendLabelValues(config.ServiceKey{Protocol: b.proto, Addr: b.local, Port: b.lport}, b.remote, b.rport)
}

// destSample is one per-destination value read under the reconciler's
// lock, with the cache entry of its labels.
type destSample struct {
	cl *cachedLabels
	v  float64
}

// cachedLabels are the label pairs of one backendKey, with the scrape
// that last used them and their rank in the order the registry sorts
// series in.
type cachedLabels struct {
	pairs []*dto.LabelPair // nil until built, outside the reconciler's lock
	used  uint64
	rank  int
}

// addedLabels is a cache entry added under the reconciler's lock, its
// pairs built after.
type addedLabels struct {
	cl  *cachedLabels
	key backendKey
}

// destGatherer builds lvsprobe_ipvs_destination_weight and
// lvsprobe_real_server_up as metric families directly.
type destGatherer struct {
	r       *Reconciler
	mu      sync.Mutex // one build at a time; guards the fields below
	gen     uint64
	cache   map[backendKey]*cachedLabels
	added   []addedLabels      // entries of this scrape whose pairs are yet to build
	pairs   metricfam.Interner // the cache's label pairs, shared between destinations
	ordered []*cachedLabels    // the cache sorted by label values, valid unless dirty
	dirty   bool               // entries were added or removed since ordered was built
	hint    [2]int             // series of the last scrape, to size the next one's buffers
}

// DirectGatherer switches c to leave lvsprobe_ipvs_destination_weight
// and lvsprobe_real_server_up out of Collect (Describe still describes
// them) and returns the Gatherer that builds them instead, from label
// pairs cached, and sorted, for as long as the destination exists.
// Serve its families beside the registry's (metricfam.Merged). Call it
// before the first scrape.
func (c *Collector) DirectGatherer() prometheus.Gatherer {
	c.direct = true
	return &destGatherer{r: c.r, cache: map[backendKey]*cachedLabels{}}
}

var _ metricfam.LazyGatherer = (*destGatherer)(nil)

// Gather implements prometheus.Gatherer.
func (g *destGatherer) Gather() ([]*dto.MetricFamily, error) {
	return metricfam.BuildAll(g.GatherLazy())
}

// GatherLazy implements metricfam.LazyGatherer: the values are read and
// placed in label order now, the families' structs built by Build.
func (g *destGatherer) GatherLazy() ([]metricfam.Lazy, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gen++
	weights, ups := g.read(make([]destSample, 0, g.hint[0]), make([]destSample, 0, g.hint[1]))
	g.hint = [2]int{len(weights), len(ups)}
	for k, cl := range g.cache {
		if cl.used != g.gen {
			delete(g.cache, k) // the destination left the table or the configuration
			g.dirty = true
		}
	}
	for _, a := range g.added {
		a.cl.pairs = g.pairs.Labels(BackendLabels, a.key.values())
	}
	g.added = nil // not kept: as large as the table at the first scrape
	if g.dirty {
		g.ordered = g.ordered[:0]
		for _, cl := range g.cache {
			g.ordered = append(g.ordered, cl)
		}
		g.pairs.Keep(func(yield func([]*dto.LabelPair) bool) {
			for _, cl := range g.ordered {
				if !yield(cl.pairs) {
					return
				}
			}
		})
		slices.SortFunc(g.ordered, func(a, b *cachedLabels) int { return metricfam.CompareLabels(a.pairs, b.pairs) })
		for i, cl := range g.ordered {
			cl.rank = i
		}
		g.dirty = false
	}
	var out []metricfam.Lazy
	ordered := slices.Clone(g.ordered) // a later gather reorders g.ordered
	for _, s := range [2]struct {
		name, help string
		samples    []destSample
	}{{destWeightName, destWeightHelp, weights}, {realServerUpName, realServerUpHelp, ups}} {
		// Place the values by rank: sorted without a sort, and two real
		// servers on one destination give one series, the first's.
		vals := make([]float64, len(g.ordered))
		has := make([]bool, len(g.ordered))
		n := 0
		for _, d := range s.samples {
			if !has[d.cl.rank] {
				has[d.cl.rank], vals[d.cl.rank] = true, d.v
				n++
			}
		}
		if n == 0 {
			continue // the registry leaves a family without series out
		}
		name, help := s.name, s.help
		out = append(out, metricfam.Lazy{Name: name, Build: func() *dto.MetricFamily {
			f := metricfam.NewFamily(name, help, dto.MetricType_GAUGE, n)
			for i, cl := range ordered {
				if has[i] {
					f.Gauge(cl.pairs, vals[i])
				}
			}
			return f.Sorted()
		}, Text: func(w *bufio.Writer) {
			metricfam.TextHeader(w, name, help, dto.MetricType_GAUGE)
			for i, cl := range ordered {
				if has[i] {
					metricfam.TextSample(w, name, cl.pairs, vals[i])
				}
			}
		}})
	}
	return out, nil
}

// read appends the destinations' weights and the real servers' states
// to weights and ups, holding the reconciler's lock only to copy them
// and to find (or add, without labels yet) their cache entries.
func (g *destGatherer) read(weights, ups []destSample) ([]destSample, []destSample) {
	entry := func(k backendKey) *cachedLabels {
		cl := g.cache[k]
		if cl == nil {
			cl = &cachedLabels{}
			g.cache[k] = cl
			g.added = append(g.added, addedLabels{cl, k})
			g.dirty = true
		}
		cl.used = g.gen
		return cl
	}
	r := g.r
	r.mu.Lock()
	defer r.mu.Unlock()
	r.eachDestination(func(k config.ServiceKey, addr netip.Addr, port uint16, w float64) {
		weights = append(weights, destSample{entry(backendKeyOf(k, addr, port)), w})
	}, func(k config.ServiceKey, addr netip.Addr, port uint16, up float64) {
		ups = append(ups, destSample{entry(backendKeyOf(k, addr, port)), up})
	})
	return weights, ups
}
