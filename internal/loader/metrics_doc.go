package loader

import "github.com/prometheus/client_golang/prometheus"

// PassiveMetricsForDoc returns the passive observer's collector over a
// closed observer: it describes every family and collects nothing but its
// error counter. It lets tools list the families without loading the
// programs (docs/metrics.md is generated from the registered descriptors).
func PassiveMetricsForDoc() prometheus.Collector {
	return newPassiveCollector(&Passive{closed: true})
}
