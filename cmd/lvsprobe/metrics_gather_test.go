package main

import (
	"sync"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// blockingGatherer counts its gathers and holds each one until release
// is closed, so that scrapes can pile up behind it.
type blockingGatherer struct {
	calls   atomic.Int32
	started chan struct{}
	release chan struct{}
}

func (b *blockingGatherer) Gather() ([]*dto.MetricFamily, error) {
	if b.calls.Add(1) == 1 {
		close(b.started)
	}
	<-b.release
	name := "x"
	return []*dto.MetricFamily{{Name: &name}}, nil
}

func TestOnceAtATimeSharesOneGather(t *testing.T) {
	b := &blockingGatherer{started: make(chan struct{}), release: make(chan struct{})}
	o := &onceAtATime{g: b}
	const scrapes = 8
	var wg sync.WaitGroup
	results := make([][]*dto.MetricFamily, scrapes)
	wg.Add(1)
	go func() { defer wg.Done(); results[0], _ = o.Gather() }()
	<-b.started // the first gather is running: the others must wait for it
	var waiting sync.WaitGroup
	for i := 1; i < scrapes; i++ {
		wg.Add(1)
		waiting.Add(1)
		go func() {
			defer wg.Done()
			waiting.Done()
			results[i], _ = o.Gather()
		}()
	}
	waiting.Wait()
	close(b.release)
	wg.Wait()
	// Late callers may have missed the shared call and run their own, but
	// never more than one at a time and never one per scrape here, because
	// the release came after all of them had been started.
	if n := b.calls.Load(); n >= scrapes {
		t.Fatalf("%d gathers for %d concurrent scrapes, want them shared", n, scrapes)
	}
	for i, r := range results {
		if len(r) != 1 || r[0].GetName() != "x" {
			t.Errorf("scrape %d got %v", i, r)
		}
	}
	// A later scrape gathers afresh.
	before := b.calls.Load()
	if _, err := o.Gather(); err != nil {
		t.Fatal(err)
	}
	if b.calls.Load() != before+1 {
		t.Errorf("a scrape after the others did not gather again")
	}
}
