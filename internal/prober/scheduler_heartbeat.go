package prober

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// heartbeatPeriod is the longest the dispatch loop waits before going
// round again when no check is due, so an idle loop still beats.
const heartbeatPeriod = time.Second

// Heartbeat returns when the scheduling (dispatch) loop last went round,
// or the zero time before Run started it. A live loop goes round at least
// every second, and whenever a check is due and a slot in flight frees; a
// Heartbeat older than a few seconds means the loop is stalled — every
// slot held by checks that never return (they keep their slots only on a
// starved director or with StaticConcurrency), or the loop blocked — and no real
// server is being checked any more (keepalived #2523: a checker process
// that hangs while the director keeps serving a stale table).
func (s *Scheduler) Heartbeat() time.Time {
	n := s.beat.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// heartbeatDesc describes the heartbeat gauge of [SchedulerCollector].
var heartbeatDesc = prometheus.NewDesc("lvsprobe_scheduler_heartbeat_timestamp_seconds",
	"Unix time at which the check scheduling loop last went round (at least every second while it is alive); "+
		"time() minus this above a few seconds means checks have stalled. 0 before the loop started.", nil, nil)

// collectHeartbeat sends the heartbeat gauge.
func (c *SchedulerCollector) collectHeartbeat(ch chan<- prometheus.Metric) {
	v := 0.0
	if t := c.s.Heartbeat(); !t.IsZero() {
		v = float64(t.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(heartbeatDesc, prometheus.GaugeValue, v)
}
