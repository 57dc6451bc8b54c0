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
