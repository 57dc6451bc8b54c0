package loader

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestPassiveRefusalEvents: within one event gap a real server sends at
// most one plain reset event and one refusal event. A refusal (a RST
// answering a tracked SYN) that starts the gap is sent as the refusal,
// and one after an established connection's reset still goes up; more
// refusals in the gap send nothing. Each case has its own real server
// and, after it, a reset of a marker real server: the ring buffer keeps
// order, so the events before the marker's are all the case sent.
func TestPassiveRefusalEvents(t *testing.T) {
	const (
		reset  = "reset"  // an established connection's RST (sequence not 0)
		refuse = "refuse" // a client SYN, then the RST that answers it
	)
	tests := []struct {
		name string
		do   []string
		want []EventKind
	}{
		{"a reset", []string{reset}, []EventKind{EventReset}},
		{"resets", []string{reset, reset, reset}, []EventKind{EventReset}},
		{"a refusal", []string{refuse}, []EventKind{EventRefused}},
		{"refusals", []string{refuse, refuse, refuse}, []EventKind{EventRefused}},
		{"a reset, then refusals", []string{reset, refuse, refuse}, []EventKind{EventReset, EventRefused}},
		{"a reset, a refusal, a reset, a refusal", []string{reset, refuse, reset, refuse}, []EventKind{EventReset, EventRefused}},
		{"a refusal, then resets", []string{refuse, reset, reset}, []EventKind{EventRefused}},
	}
	// A gap no case outlasts, whichever clock the programs test it with.
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, EventGap: time.Minute, PollInterval: time.Hour})
	target := func(i int) netip.AddrPort { return netip.MustParseAddrPort(fmt.Sprintf("198.18.7.%d:80", 10+i)) }
	marker := func(i int) netip.AddrPort { return netip.MustParseAddrPort(fmt.Sprintf("198.18.8.%d:80", 10+i)) }
	var all []netip.AddrPort
	for i := range tests {
		all = append(all, target(i), marker(i))
	}
	if err := p.SetRealServers(all); err != nil {
		t.Fatal(err)
	}
	egress, ingress := p.Programs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := target(i)
			for j, what := range tc.do {
				client := netip.AddrPortFrom(client4.Addr(), uint16(41000+j))
				switch what {
				case reset:
					run(t, ingress, pkt{src: rs, dst: client, flags: fRST | fACK, seq: 77}.build())
				case refuse:
					run(t, egress, pkt{src: client, dst: rs, flags: fSYN}.build())
					run(t, ingress, pkt{src: rs, dst: client, flags: fRST | fACK}.build())
				}
			}
			run(t, ingress, pkt{src: marker(i), dst: client4, flags: fRST | fACK, seq: 77}.build())
			var got []EventKind
			timeout := time.After(10 * time.Second)
			for done := false; !done; {
				select {
				case e := <-p.Events():
					switch e.RealServer {
					case rs:
						got = append(got, e.Kind)
					case marker(i):
						done = true
					default:
						t.Errorf("event %s for %s", e.Kind, e.RealServer)
					}
				case <-timeout:
					t.Fatalf("no event for the marker %s; %s sent %v", marker(i), rs, got)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("events %v, want %v", got, tc.want)
			}
			var refused uint64
			for _, what := range tc.do {
				if what == refuse {
					refused++
				}
			}
			if c := counters(t, p, rs); c.Resets != uint64(len(tc.do)) || c.Refused != refused {
				t.Errorf("counters %+v, want %d resets, %d refused", c, len(tc.do), refused)
			}
		})
	}
}

// TestPassiveRefusedAfterReset: a server in the real server's namespace
// holds a client's connection and is killed; the connection's RST sends
// a reset event and starts the event gap. A client connect right after,
// refused, still sends its refusal event at once, not only a count the
// next read of the counters finds.
func TestPassiveRefusedAfterReset(t *testing.T) {
	// Counters read rarely, and a gap longer than the test: only the
	// refusal's own event can report it.
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, EventGap: time.Minute, PollInterval: time.Hour, EventTail: time.Hour})
	client, rs, target := routedRun(t, p, 8080)
	srv := startServer(t, rs, 8080)
	c, err := dial(client, target, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("unread")); err != nil { // closed unread: a RST, not a FIN
		t.Fatal(err)
	}
	if err := srv.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	srv.Wait()
	reset := waitEvent(t, p, EventReset, target)
	if _, err := dial(client, target, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after the kill = %v, want refused", err)
	}
	refused := waitEvent(t, p, EventRefused, target)
	if d := time.Duration(refused.KtimeNs - reset.KtimeNs); d <= 0 || d >= time.Minute {
		t.Errorf("refusal event %v after the reset event, want within the gap", d)
	}
	if c := counters(t, p, target); c.Resets < 2 || c.Refused != 1 {
		t.Errorf("counters %+v, want >= 2 resets, 1 refused", c)
	}
}
