package prober

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestSilenceBeforeTheCrowd: while silence is untrusted (many endpoints
// silent at once, or the SYN prober late), an endpoint's silence still
// corroborates its failed check only if it was its own before the crowd's:
// MissThreshold probes unanswered by the time silence became untrusted. An
// endpoint that merely went silent a few milliseconds before the others —
// the first of a stalled director's misses to be handed over, suspected
// before the count reached the guard — is part of the crowd, and its
// timed-out check climbs the retry ladder (the first of the guest's
// stalls suspected 5 healthy real servers that way, §11 falsedown round).
func TestSilenceBeforeTheCrowd(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name      string
		misses    []int // ms of each unanswered probe of the endpoint, counted 1, 2, ...
		untrusted int   // ms at which silence became untrusted
		start     int   // the failed check's start
		wantCut   string
	}{
		{"black-holed long before the crowd: cut", []int{100, 200, 300, 400}, 1000, 110, "probes unanswered"},
		{"three misses just before the crowd: cut", []int{100, 200, 300, 400}, 301, 110, "probes unanswered"},
		{"first of the crowd, one miss before it: no cut", []int{100, 200, 300, 400}, 105, 110, ""},
		{"two misses before the crowd: no cut", []int{100, 200, 300, 400}, 250, 110, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testParams(DetectFast)
			addr := netip.MustParseAddrPort("198.18.1.2:80")
			e := &epState{addr: addr}
			e.observe(&p, Evidence{Target: addr, Kind: EvidenceSynAck, At: ms(0)}, ms(0))
			for i, at := range tc.misses {
				if !p.silenceUntrusted && at > tc.untrusted {
					p.silenceUntrusted, p.untrustedSince = true, ms(tc.untrusted)
				}
				e.observe(&p, Evidence{Target: addr, Kind: EvidenceSilence, Count: i + 1, At: ms(at)}, ms(at))
			}
			if !p.silenceUntrusted {
				p.silenceUntrusted, p.untrustedSince = true, ms(tc.untrusted)
			}
			why, cut := e.corroborates(&p, ms(tc.start), ms(3110))
			if (tc.wantCut != "") != cut || !strings.Contains(why, tc.wantCut) {
				t.Fatalf("corroborates = %q, %t; want cut %q", why, cut, tc.wantCut)
			}
		})
	}
}

// TestCrowdOfSingleMisses: a burst of answers lost on the director's side
// makes many endpoints miss one probe at once, and they answer the next.
// That crowd must not blind the detector to a black-holed endpoint among
// them (the bench rig's veth dropped such bursts every few seconds, and
// black-holed real servers waited for their scheduled checks, §14.5):
// during the crowd silence suspects at MissThreshold misses, and the
// black-holed endpoint's silence, its own since before a later crowd,
// corroborates its failed check. A stalled director link, where the whole
// crowd keeps missing, still makes silence untrusted, and the few
// endpoints that reached MissThreshold first do not have their checks cut.
func TestCrowdOfSingleMisses(t *testing.T) {
	const n = 60 // the crowd: more than 2 and more than 1 in 20, 3
	now := time.Unix(1000, 0)
	d := fastDetectorAt(t, forgetConf(t, n), &now)
	ep := forgetEP
	tick := func() { now = now.Add(100 * time.Millisecond) }
	phaseOf := func(i int) phase {
		d.mu.Lock()
		defer d.mu.Unlock()
		if e := d.eps[ep(i)]; e != nil {
			return e.phase
		}
		return phaseUp
	}
	miss := func(i, count int) { d.Observe(Evidence{Target: ep(i), Kind: EvidenceSilence, Count: count, At: now}) }
	answer := func(i int) { d.Observe(Evidence{Target: ep(i), Kind: EvidenceSynAck, At: now}) }
	crowd := func(from, to, count int) {
		for i := from; i < to; i++ {
			miss(i, count)
		}
	}

	// Endpoint 0 is black-holed as a burst is lost: 10 endpoints miss at once.
	tick()
	crowd(1, 10, 1)
	miss(0, 1)
	if got := phaseOf(0); got != phaseUp {
		t.Fatalf("first miss inside a crowd: %v, want up (no storm of checks on a lost burst)", got)
	}
	tick()
	for i := 1; i < 10; i++ { // the crowd answers its next probe...

		answer(i)
	}
	crowd(20, 30, 1) // ...as another burst is lost
	miss(0, 2)
	tick()
	miss(0, 3)
	if got := phaseOf(0); got != phaseSuspect {
		t.Fatalf("third miss in a row during a crowd: %v, want suspect", got)
	}
	start := now
	for k := 4; k < 34; k++ { // the confirming check times out; bursts keep being lost
		tick()
		miss(0, k)
	}
	for i := 20; i < 30; i++ {
		answer(i)
	}
	crowd(30, 40, 1)
	if why, ok := d.corroborates(ep(0), start); !ok {
		t.Fatalf("black-holed since before the crowd: the failed check was not corroborated")
	} else if !strings.Contains(why, "probes unanswered") {
		t.Fatalf("corroboration %q, want the unanswered probes", why)
	}
	for i := 30; i < 40; i++ {
		answer(i)
	}

	// The director's link stalls: every endpoint keeps missing.
	for k := 1; k <= 4; k++ {
		tick()
		crowd(40, n, k)
	}
	if !d.p.silenceUntrusted {
		t.Fatalf("every endpoint silent %d probes in a row: silence still trusted", 4)
	}
	start = now
	tick()
	if why, ok := d.corroborates(ep(40), start); ok {
		t.Fatalf("stalled link: the first endpoint to reach %d misses had its failed check cut (%s)", d.p.missThreshold, why)
	}
}
