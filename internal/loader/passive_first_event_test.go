package loader

import (
	"context"
	"testing"
	"time"
)

// TestPassiveFirstEventEarly: a real server's first event goes up however
// young the clock is. The programs keep the time of a real server's last
// event, zero before the first; a gap test against that zero held back
// every first event while CLOCK_MONOTONIC was below the event gap (the
// first 100 ms after boot by default). An event gap longer than the
// machine's uptime puts any machine in that state.
func TestPassiveFirstEventEarly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lab := newRefusalLab(ctx, t, time.Duration(Ktime())+time.Hour, time.Hour)
	lab.awaitRead("start")
	lab.refuse()
	lab.awaitRead("event") // held back before the fix
}
