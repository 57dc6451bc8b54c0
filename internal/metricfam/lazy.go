package metricfam

import (
	"bufio"
	"cmp"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Lazy is a metric family known by name whose series are built only
// when Build is called: a streaming scrape builds, encodes and drops one
// family before the next, so it never holds more than one large
// family's structs.
type Lazy struct {
	// Name is the family's name.
	Name string
	// Build returns the family, never nil; it may be called once, at
	// any time after the gather that returned it, and must not touch
	// state a later gather changes.
	Build func() *dto.MetricFamily
	// Text, if set, writes the family in the text format 0.0.4 exactly
	// as expfmt encodes what Build returns (TextHeader, TextSample,
	// TextHistogram), without building it; for families whose metric
	// and label names are valid legacy names. Same rules as Build.
	Text func(w *bufio.Writer)
}

// LazyGatherer is a gatherer that can return its families unbuilt. Its
// values are read (copied) by GatherLazy; only the families' structs
// are left to Build. Families without series are left out, as the
// registry leaves them out.
type LazyGatherer interface {
	prometheus.Gatherer
	GatherLazy() ([]Lazy, error)
}

// Built returns mf as a Lazy family.
func Built(mf *dto.MetricFamily) Lazy {
	return Lazy{Name: mf.GetName(), Build: func() *dto.MetricFamily { return mf }}
}

// BuildAll builds every family of lazy, in order: what Gather returns
// for a LazyGatherer.
func BuildAll(lazy []Lazy, err error) ([]*dto.MetricFamily, error) {
	var out []*dto.MetricFamily
	if len(lazy) > 0 {
		out = make([]*dto.MetricFamily, len(lazy))
	}
	for i, l := range lazy {
		out[i] = l.Build()
	}
	return out, err
}

// GatherLazy is Gather with the direct gatherers' families left unbuilt
// (those of direct gatherers that are LazyGatherers; the others and the
// registry's are built, being small): the same names in the same order,
// the same error.
func (m *Merged) GatherLazy() ([]Lazy, error) {
	m.mu.Lock()
	direct := slices.Clone(m.direct)
	m.mu.Unlock()
	var errs prometheus.MultiError
	var own []Lazy
	for _, e := range direct {
		if lg, ok := e.g.(LazyGatherer); ok {
			more, err := lg.GatherLazy()
			errs.Append(err)
			own = append(own, more...)
			continue
		}
		more, err := e.g.Gather()
		errs.Append(err)
		for _, mf := range more {
			own = append(own, Built(mf))
		}
	}
	mfs, err := m.first.Gather()
	errs.Append(err)
	out := make([]Lazy, 0, len(mfs)+len(own))
	for _, mf := range mfs {
		out = append(out, Built(mf))
	}
	if len(own) == 0 {
		return out, errs.MaybeUnwrap()
	}
	seen := make(map[string]bool, len(mfs)+len(own))
	for _, mf := range mfs {
		seen[mf.GetName()] = true
	}
	for _, l := range own {
		if seen[l.Name] {
			errs.Append(fmt.Errorf("metric family %s gathered twice: second copy left out", l.Name))
			continue
		}
		seen[l.Name] = true
		out = append(out, l)
	}
	slices.SortStableFunc(out, func(a, b Lazy) int { return cmp.Compare(a.Name, b.Name) })
	return out, errs.MaybeUnwrap()
}
