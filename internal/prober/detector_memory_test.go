package prober

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// TestDetectorKeepsStateOnlyWhileNeeded: endpoints that answer and pass
// their checks keep no state (at 10,000 real servers a state each cost
// 6 MB); a RST and a failed check make one, which is dropped once the
// endpoint is up and quiet past the corroboration window, and status
// shows every endpoint either way. Real servers reported up with no flap
// share one damping state.
func TestDetectorKeepsStateOnlyWhileNeeded(t *testing.T) {
	cfg := forgetConf(t, 3)
	s, err := NewScheduler(cfg, SchedulerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	d, err := NewDetector(s, DetectorOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("198.18.1.%d", i+2)), 80)
	}
	vs := cfg.VirtualServers[0]
	for i := range 3 {
		d.Observe(Evidence{Target: addr(i), Kind: EvidenceSynAck, RTT: time.Millisecond})
		d.checked(addr(i), true, true, now.Add(-time.Millisecond))
		d.transition(Transition{Key: vs.RealServers[i].Key(vs), Up: true, Reason: "first verdict"})
	}
	if len(d.eps) != 0 {
		t.Fatalf("%d endpoint states kept for healthy endpoints, want 0", len(d.eps))
	}
	for k, dm := range d.damp {
		if dm != &settledUp {
			t.Errorf("%v: own damping state %+v for a real server up with no flap", k, *dm)
		}
	}

	d.Observe(Evidence{Target: addr(1), Kind: EvidenceReset})
	if e := d.eps[addr(1)]; e == nil || e.phase != phaseSuspect {
		t.Fatalf("after a RST: state %+v, want a suspect endpoint", e)
	}
	if st := endpointState(d.Status(), addr(1)); st != "suspect" {
		t.Errorf("status says %q for the suspect endpoint", st)
	}
	now = now.Add(time.Millisecond)
	d.checked(addr(1), true, true, now.Add(-time.Millisecond)) // the check says it serves
	if d.eps[addr(1)] == nil {
		t.Fatal("state dropped while its backoff and RST still matter")
	}
	now = now.Add(DefaultBackoffMax + DefaultBackoffMin + time.Second)
	d.Observe(Evidence{Target: addr(1), Kind: EvidenceSynAck})
	if e := d.eps[addr(1)]; e != nil {
		t.Fatalf("state %+v kept after the endpoint settled", e)
	}
	st := d.Status()
	if len(st.Endpoints) != 3 {
		t.Fatalf("status shows %d endpoints, want 3", len(st.Endpoints))
	}
	for i := range 3 {
		if got := endpointState(st, addr(i)); got != "up" {
			t.Errorf("status: %v is %q, want up", addr(i), got)
		}
	}
}

func endpointState(st DetectorStatus, a netip.AddrPort) string {
	for _, e := range st.Endpoints {
		if e.Endpoint == a {
			return e.State
		}
	}
	return ""
}
