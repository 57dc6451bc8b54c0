package prober

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// checkDurationBuckets span a loopback TCP connect (under a millisecond)
// to the longest connect_timeout in common use (tens of seconds).
var checkDurationBuckets = prometheus.ExponentialBuckets(0.0005, 2.5, 12)

// checkMetrics are the per-attempt instruments of a [Scheduler],
// exported by [SchedulerCollector].
type checkMetrics struct {
	duration *prometheus.HistogramVec
}

func newCheckMetrics() *checkMetrics {
	return &checkMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lvsprobe_check_duration_seconds",
			Help: "Duration of completed check attempts, by checker type (TCP_CHECK, HTTP_GET, SSL_GET, ...) and result (success, failure); " +
				"the _count series count the attempts.",
			Buckets: checkDurationBuckets,
		}, []string{"type", "result"}),
	}
}

// observe records one completed attempt.
func (m *checkMetrics) observe(typ config.CheckerType, ok bool, d time.Duration) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.duration.WithLabelValues(string(typ), result).Observe(d.Seconds())
}

// collectChecks sends the duration histogram, with a zero series for
// both results of every checker type the configuration uses, so that a
// failure rate reads 0 rather than nothing before the first failure.
func (s *Scheduler) collectChecks(ch chan<- prometheus.Metric) {
	var types []config.CheckerType
	seen := map[config.CheckerType]bool{}
	s.mu.Lock()
	for _, u := range s.plan.units {
		if t := u.block.Type; !seen[t] {
			seen[t] = true
			types = append(types, t)
		}
	}
	s.mu.Unlock()
	for _, t := range types {
		for _, r := range []string{"success", "failure"} {
			s.metrics.duration.WithLabelValues(string(t), r)
		}
	}
	s.metrics.duration.Collect(ch)
}
