package loader

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
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
	gap := time.Duration(Ktime()) + time.Hour
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, PollInterval: time.Hour, EventGap: gap, EventTail: time.Hour})
	client, rs := routed(t, p)
	target := netip.AddrPortFrom(rs.Addr, 8081) // nothing listens
	if err := p.SetRealServers([]netip.AddrPort{target}); err != nil {
		t.Fatal(err)
	}
	reads := make(chan string, 16)
	p.onRead = func(why string) { reads <- why }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	await := func(want string) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case why := <-reads:
				if why == want {
					return
				}
			case <-timeout:
				t.Fatalf("no %q read: the first event was held back", want)
			}
		}
	}
	await("start")
	if _, err := dial(client, target, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial = %v, want refused", err)
	}
	await("event")
}
