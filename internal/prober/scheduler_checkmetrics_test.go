package prober

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// TestCheckDurationMetric checks that every completed attempt lands in
// the duration histogram under its checker type and result.
func TestCheckDurationMetric(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		env.hold = 30 * time.Millisecond
		env.setFail("198.18.0.2:80", true)
		tm := timing{delayLoop: time.Second, delayBeforeRetry: time.Second}
		cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, rs(1, tcpBlock(1, 80, tm)), rs(2, tcpBlock(2, 80, tm)))}}
		s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker})
		if err != nil {
			t.Fatal(err)
		}
		before := prometheus.NewPedanticRegistry()
		before.MustRegister(NewSchedulerCollector(s))
		if n, err := testutil.GatherAndCount(before, "lvsprobe_check_duration_seconds"); err != nil || n != 2 {
			t.Fatalf("before any attempt: %d series, %v; want TCP_CHECK success and failure at 0", n, err)
		}
		startScheduler(t, s)
		time.Sleep(3500 * time.Millisecond) // attempts at 1, 2 and 3 s
		synctest.Wait()

		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(NewSchedulerCollector(s))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]uint64{}
		var sum float64
		for _, mf := range mfs {
			if mf.GetName() != "lvsprobe_check_duration_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				key := ""
				for _, l := range m.GetLabel() {
					key += l.GetName() + "=" + l.GetValue() + " "
				}
				got[key] = m.GetHistogram().GetSampleCount()
				sum += m.GetHistogram().GetSampleSum()
			}
		}
		want := map[string]uint64{"result=failure type=TCP_CHECK ": 3, "result=success type=TCP_CHECK ": 3}
		if len(got) != len(want) || got["result=failure type=TCP_CHECK "] != 3 || got["result=success type=TCP_CHECK "] != 3 {
			t.Fatalf("attempts by labels = %v, want %v", got, want)
		}
		if sum < 6*0.03-1e-9 || sum > 6*0.03+1e-9 {
			t.Fatalf("duration sum %v s, want 6 × 30 ms", sum)
		}
		if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
			t.Fatalf("lint: %v %v", probs, err)
		}
	})
}
