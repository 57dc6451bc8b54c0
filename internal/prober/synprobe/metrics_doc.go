package synprobe

import (
	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers the prober's metric families on reg, at zero
// and without a prober, so that tools can list them (the metrics
// reference, docs/metrics.md, is generated from the registered
// descriptors).
func RegisterMetrics(reg prometheus.Registerer) error {
	zero := func() float64 { return 0 }
	_, err := newMetrics(reg, zero, zero, func() (loader.Stats, bool) { return loader.Stats{}, true })
	return err
}
