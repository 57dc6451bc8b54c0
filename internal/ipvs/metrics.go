package ipvs

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports a Reconciler's counters and quorum states to
// Prometheus, read fresh on every scrape. Register it in cmd (names get
// the lvsprobe_ipvs_ prefix).
type Collector struct {
	r        *Reconciler
	ops      *prometheus.Desc
	reads    *prometheus.Desc
	errs     *prometheus.Desc
	races    *prometheus.Desc
	deferred *prometheus.Desc
	pending  *prometheus.Desc
	passes   *prometheus.Desc
	quorum   *prometheus.Desc
	direct   bool // the per-destination families are left to DirectGatherer's Gatherer
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector for r.
func NewCollector(r *Reconciler) *Collector {
	name := func(n string) string { return prometheus.BuildFQName("lvsprobe", "ipvs", n) }
	return &Collector{
		r:        r,
		ops:      prometheus.NewDesc(name("operations_total"), "IPVS writes that succeeded, by kind (add_service, update_service, delete_service, add_destination, update_destination, delete_destination, set_timeouts).", []string{"kind"}, nil),
		reads:    prometheus.NewDesc(name("reads_total"), "IPVS table reads (service list and destination lists).", nil, nil),
		errs:     prometheus.NewDesc(name("errors_total"), "IPVS reads and writes the backend refused.", nil, nil),
		races:    prometheus.NewDesc(name("races_total"), "Writes that met EEXIST or ENOENT because someone else changed the table, and were absorbed.", nil, nil),
		deferred: prometheus.NewDesc(name("deferred_total"), "Writes not tried because their target was backing off after an error.", nil, nil),
		pending:  prometheus.NewDesc(name("backoff_targets"), "Services and destinations now backing off after an error.", nil, nil),
		passes:   prometheus.NewDesc(name("passes_total"), "Reconcile passes run.", nil, nil),
		quorum:   prometheus.NewDesc(name("quorum_up"), "1 when the virtual server has quorum, 0 when it has lost it.", []string{"virtual_server"}, nil),
	}
}

// Describe sends every metric description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.ops, c.reads, c.errs, c.races, c.deferred, c.pending, c.passes, c.quorum} {
		ch <- d
	}
	ch <- destWeightDesc
	ch <- realServerUpDesc
}

// Collect sends the current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.r.Stats()
	for _, k := range []OpKind{OpAddService, OpUpdateService, OpDeleteService, OpAddDestination, OpUpdateDestination, OpDeleteDestination, OpSetTimeouts} {
		ch <- prometheus.MustNewConstMetric(c.ops, prometheus.CounterValue, float64(st.Ops[k]), string(k))
	}
	ch <- prometheus.MustNewConstMetric(c.reads, prometheus.CounterValue, float64(st.Reads))
	ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(st.Errors))
	ch <- prometheus.MustNewConstMetric(c.races, prometheus.CounterValue, float64(st.Races))
	ch <- prometheus.MustNewConstMetric(c.deferred, prometheus.CounterValue, float64(st.Deferred))
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(c.passes, prometheus.CounterValue, float64(st.Passes))
	c.r.mu.Lock()
	q := maps.Clone(c.r.quorum)
	c.r.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(q)) {
		v := 0.0
		if q[id] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.quorum, prometheus.GaugeValue, v, id)
	}
	if !c.direct {
		c.collectDestinations(ch)
	}
}
