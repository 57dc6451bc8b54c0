package prober

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// detectorMetrics are the detector's Prometheus metrics (names carry the
// lvsprobe_detector_ prefix).
type detectorMetrics struct {
	latency         *prometheus.HistogramVec
	suspicions      *prometheus.CounterVec
	expedited       prometheus.Counter
	falseSuspicions prometheus.Counter
	cuts            prometheus.Counter
	held            prometheus.Counter
	state           *detectorCollector
}

// detectorCollector reads the endpoints' phases and the flap penalties
// on every scrape.
type detectorCollector struct {
	d         *Detector
	endpoints *prometheus.Desc
	penalty   *prometheus.Desc
	damped    *prometheus.Desc
}

var _ prometheus.Collector = (*detectorCollector)(nil)

func newDetectorMetrics(d *Detector, reg prometheus.Registerer) (*detectorMetrics, error) {
	name := func(n string) string { return prometheus.BuildFQName("lvsprobe", "detector", n) }
	m := &detectorMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    name("detection_seconds"),
			Help:    "Time from the first fast signal (trigger=fast) or the first failed check (trigger=check) to the health change passed to IPVS.",
			Buckets: []float64{.005, .01, .025, .05, .1, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10, 15, 30, 60},
		}, []string{"direction", "trigger"}),
		suspicions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: name("suspicions_total"), Help: "Endpoints that became suspect, by the signal that did it.",
		}, []string{"signal"}),
		expedited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("expedited_total"), Help: "Full checks run at once on a fast signal (suspicion or recovery).",
		}),
		falseSuspicions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("false_suspicions_total"), Help: "Suspicions the confirming full check found wrong.",
		}),
		cuts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("ladder_cuts_total"), Help: "Failed full checks whose retry ladder a corroborating fast signal cut short.",
		}),
		held: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name("recoveries_held_total"), Help: "Recoveries held back by flap damping.",
		}),
		state: &detectorCollector{
			d:         d,
			endpoints: prometheus.NewDesc(name("endpoints"), "Endpoints by detector state.", []string{"state"}, nil),
			penalty:   prometheus.NewDesc(name("flap_penalty"), "Flap penalty of real servers that have one (halves every minute; recoveries are held back from 2).", []string{"real_server"}, nil),
			damped:    prometheus.NewDesc(name("recoveries_held"), "Real servers whose recovery is being held back now.", nil, nil),
		},
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.latency, m.suspicions, m.expedited, m.falseSuspicions, m.cuts, m.held, m.state} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register: %w", err)
		}
	}
	return m, nil
}

// Describe sends the descriptions.
func (c *detectorCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.endpoints
	ch <- c.penalty
	ch <- c.damped
}

// Collect sends the current values.
func (c *detectorCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.Status()
	by := map[string]int{"up": 0, "suspect": 0, "down": 0, "recovering": 0}
	for _, e := range st.Endpoints {
		by[e.State]++
	}
	for s, n := range by {
		ch <- prometheus.MustNewConstMetric(c.endpoints, prometheus.GaugeValue, float64(n), s)
	}
	held := 0
	for _, d := range st.Damping {
		ch <- prometheus.MustNewConstMetric(c.penalty, prometheus.GaugeValue, d.Penalty, d.Key.String())
		if !d.HeldUntil.IsZero() {
			held++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.damped, prometheus.GaugeValue, float64(held))
}
