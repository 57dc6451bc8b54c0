package prober

import (
	"github.com/prometheus/client_golang/prometheus"
)

// SchedulerCollector exports a Scheduler's work and its scheduling
// lateness to Prometheus, read fresh on every scrape. Register it in cmd
// (names carry the lvsprobe_scheduler_ prefix).
type SchedulerCollector struct {
	s           *Scheduler
	lateness    *prometheus.Desc
	attempts    *prometheus.Desc
	failures    *prometheus.Desc
	transitions *prometheus.Desc
	checks      *prometheus.Desc
	servers     *prometheus.Desc
	inFlight    *prometheus.Desc
	limit       *prometheus.Desc
}

var _ prometheus.Collector = (*SchedulerCollector)(nil)

// NewSchedulerCollector returns a collector for s.
func NewSchedulerCollector(s *Scheduler) *SchedulerCollector {
	name := func(n string) string { return prometheus.BuildFQName("lvsprobe", "scheduler", n) }
	return &SchedulerCollector{
		s:           s,
		lateness:    prometheus.NewDesc(name("lateness_seconds"), "How late check attempts started: actual start minus due time.", nil, nil),
		attempts:    prometheus.NewDesc(name("attempts_total"), "Check attempts completed.", nil, nil),
		failures:    prometheus.NewDesc(name("attempt_failures_total"), "Check attempts that failed.", nil, nil),
		transitions: prometheus.NewDesc(name("transitions_total"), "Real server health changes reported.", nil, nil),
		checks:      prometheus.NewDesc(name("checks"), "Distinct checks scheduled (checker blocks doing the same check count once).", nil, nil),
		servers:     prometheus.NewDesc(name("real_servers"), "Real servers by health.", []string{"state"}, nil),
		inFlight:    prometheus.NewDesc(name("attempts_in_flight"), "Check attempts running now.", nil, nil),
		limit:       prometheus.NewDesc(name("concurrency_limit"), "Check attempts allowed in flight now (adaptive, at most --max-concurrent); an attempt past its first 100 ms counts only while the director looks starved.", nil, nil),
	}
}

// Describe sends every metric description.
func (c *SchedulerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lateness, c.attempts, c.failures, c.transitions, c.checks, c.servers, c.inFlight, c.limit, heartbeatDesc} {
		ch <- d
	}
	c.s.metrics.duration.Describe(ch)
}

// latenessExportEvery thins the internal buckets (four per octave) to one
// per octave for export.
const latenessExportEvery = latenessBucketsPerOctave

// Collect sends the current values.
func (c *SchedulerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	l := c.s.Lateness()
	buckets := map[float64]uint64{}
	var cum uint64
	for i, b := range l.Buckets[:len(l.Buckets)-1] {
		cum += b.Count
		if i%latenessExportEvery == 0 {
			buckets[b.UpperBound.Seconds()] = cum
		}
	}
	ch <- prometheus.MustNewConstHistogram(c.lateness, l.Count, l.Sum.Seconds(), buckets)
	ch <- prometheus.MustNewConstMetric(c.attempts, prometheus.CounterValue, float64(st.Attempts))
	ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.Failures))
	ch <- prometheus.MustNewConstMetric(c.transitions, prometheus.CounterValue, float64(st.Transitions))
	ch <- prometheus.MustNewConstMetric(c.checks, prometheus.GaugeValue, float64(st.Checks))
	ch <- prometheus.MustNewConstMetric(c.servers, prometheus.GaugeValue, float64(st.RealServers-st.Down), "up")
	ch <- prometheus.MustNewConstMetric(c.servers, prometheus.GaugeValue, float64(st.Down), "down")
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(st.InFlight))
	ch <- prometheus.MustNewConstMetric(c.limit, prometheus.GaugeValue, float64(c.s.ConcurrencyLimit()))
	c.collectHeartbeat(ch)
	c.s.collectChecks(ch)
}
