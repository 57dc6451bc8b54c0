package main

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sync/singleflight"
)

// onceAtATime is a prometheus.Gatherer that runs at most one Gather of the
// registry it wraps at a time: a scrape that arrives while another is
// being gathered waits for that one and shares its result.
//
// At 10,000 real servers one gather builds tens of thousands of series
// (about 30 MB of garbage). On a starved director, scrapes time out at
// the client and are retried while the abandoned gathers still run; each
// one held its own copy, and the heap grew by hundreds of megabytes (a
// soak at load average 20 on 2 CPUs peaked at 700 MB RSS, 150 MB of it
// in gathers). Sharing bounds that to one gather whatever the scrapers do.
type onceAtATime struct {
	g     prometheus.Gatherer
	group singleflight.Group
}

// gathered is one Gather's result, shared by every caller that waited.
type gathered struct {
	mfs []*dto.MetricFamily
	err error
}

// Gather implements prometheus.Gatherer. The families returned may be
// shared between concurrent callers; promhttp only reads them.
func (o *onceAtATime) Gather() ([]*dto.MetricFamily, error) {
	v, _, _ := o.group.Do("", func() (any, error) {
		mfs, err := o.g.Gather()
		return gathered{mfs, err}, nil
	})
	r := v.(gathered)
	return r.mfs, r.err
}
