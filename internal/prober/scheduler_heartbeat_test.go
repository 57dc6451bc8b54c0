package prober

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestHeartbeat checks that an idle loop still beats and that a loop
// stalled behind checks that never return stops beating.
func TestHeartbeat(t *testing.T) {
	tm := timing{delayLoop: 30 * time.Second, delayBeforeRetry: time.Second}
	tests := []struct {
		name      string
		hold      time.Duration // how long every check takes
		wantStale bool
	}{
		{name: "idle", hold: 0},
		{name: "stalled", hold: time.Hour, wantStale: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				env := newFakeEnv()
				env.hold = tt.hold
				cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, rs(1, tcpBlock(1, 80, tm)), rs(2, tcpBlock(2, 80, tm)))}}
				s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker, MaxConcurrent: 1, StaticConcurrency: true})
				if err != nil {
					t.Fatal(err)
				}
				if !s.Heartbeat().IsZero() {
					t.Fatalf("Heartbeat before Run = %v, want zero", s.Heartbeat())
				}
				startScheduler(t, s)
				time.Sleep(10 * time.Second) // the checks ran at 1 s; then nothing is due for 29 s
				synctest.Wait()
				age := time.Since(s.Heartbeat())
				if stale := age > 2*heartbeatPeriod; stale != tt.wantStale {
					t.Fatalf("heartbeat age %v: stale %v, want %v", age, stale, tt.wantStale)
				}
				reg := prometheus.NewPedanticRegistry()
				reg.MustRegister(NewSchedulerCollector(s))
				want := float64(s.Heartbeat().UnixNano()) / 1e9
				mfs, err := reg.Gather()
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, mf := range mfs {
					if mf.GetName() == "lvsprobe_scheduler_heartbeat_timestamp_seconds" {
						found = true
						if got := mf.GetMetric()[0].GetGauge().GetValue(); got != want {
							t.Fatalf("heartbeat gauge %v, want %v", got, want)
						}
					}
				}
				if !found {
					t.Fatal("no lvsprobe_scheduler_heartbeat_timestamp_seconds")
				}
				if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
					t.Fatalf("lint: %v %v", probs, err)
				}
			})
		})
	}
}
