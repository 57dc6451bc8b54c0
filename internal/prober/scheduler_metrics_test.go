package prober

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

func TestSchedulerCollector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		env := newFakeEnv()
		env.setFail("198.18.0.2:80", true)
		tm := timing{delayLoop: time.Second, delayBeforeRetry: time.Second}
		cfg := &config.Config{VirtualServers: []*config.VirtualServer{vs(1, rs(1, tcpBlock(1, 80, tm)), rs(2, tcpBlock(2, 80, tm)))}}
		s, err := NewScheduler(cfg, SchedulerOptions{NewChecker: env.newChecker})
		if err != nil {
			t.Fatal(err)
		}
		startScheduler(t, s)
		time.Sleep(2500 * time.Millisecond) // two rounds, both on time
		synctest.Wait()

		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(NewSchedulerCollector(s))
		want := `
# HELP lvsprobe_scheduler_attempt_failures_total Check attempts that failed.
# TYPE lvsprobe_scheduler_attempt_failures_total counter
lvsprobe_scheduler_attempt_failures_total 2
# HELP lvsprobe_scheduler_attempts_total Check attempts completed.
# TYPE lvsprobe_scheduler_attempts_total counter
lvsprobe_scheduler_attempts_total 4
# HELP lvsprobe_scheduler_checks Distinct checks scheduled (checker blocks doing the same check count once).
# TYPE lvsprobe_scheduler_checks gauge
lvsprobe_scheduler_checks 2
# HELP lvsprobe_scheduler_concurrency_limit Check attempts allowed in flight now (adaptive, at most --max-concurrent); an attempt past its first 100 ms counts only while the director looks starved.
# TYPE lvsprobe_scheduler_concurrency_limit gauge
lvsprobe_scheduler_concurrency_limit 32
# HELP lvsprobe_scheduler_real_servers Real servers by health.
# TYPE lvsprobe_scheduler_real_servers gauge
lvsprobe_scheduler_real_servers{state="down"} 1
lvsprobe_scheduler_real_servers{state="up"} 1
# HELP lvsprobe_scheduler_transitions_total Real server health changes reported.
# TYPE lvsprobe_scheduler_transitions_total counter
lvsprobe_scheduler_transitions_total 1
`
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
			"lvsprobe_scheduler_attempt_failures_total", "lvsprobe_scheduler_attempts_total", "lvsprobe_scheduler_checks", "lvsprobe_scheduler_concurrency_limit",
			"lvsprobe_scheduler_real_servers", "lvsprobe_scheduler_transitions_total"); err != nil {
			t.Fatal(err)
		}
		if n, err := testutil.GatherAndCount(reg, "lvsprobe_scheduler_lateness_seconds"); err != nil || n != 1 {
			t.Fatalf("lateness histogram: %d series, %v", n, err)
		}
		if probs, err := testutil.GatherAndLint(reg); err != nil || len(probs) > 0 {
			t.Fatalf("lint: %v %v", probs, err)
		}
	})
}
