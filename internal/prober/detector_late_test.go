package prober

import (
	"strings"
	"testing"
	"time"
)

// TestDetectorProbesLate: while the SYN prober says its timing is
// unreliable (a starved director), silence still suspects an endpoint (a
// wrong suspicion costs one check) but does not cut a failed check's
// ladder (a late drain can lose answers that overflow the ring) unless it
// is long (lateMisses·MissThreshold probes in a row), and a RST still
// does; once the probes are on time again, silence cuts again.
func TestDetectorProbesLate(t *testing.T) {
	now := time.Unix(1000, 0)
	d := fastDetectorAt(t, forgetConf(t, 4), &now)
	ep := forgetEP
	tick := func() time.Time { now = now.Add(100 * time.Millisecond); return now }

	d.SetProbesLate(true)
	tick()
	d.Observe(Evidence{Target: ep(0), Kind: EvidenceSilence, Count: d.p.missThreshold})
	d.Observe(Evidence{Target: ep(1), Kind: EvidenceReset})
	if e := d.eps[ep(0)]; e == nil || e.phase != phaseSuspect {
		t.Errorf("probes late: silence did not make %v suspect", ep(0))
	}
	if e := d.eps[ep(1)]; e == nil || e.phase != phaseSuspect {
		t.Errorf("probes late: a RST did not make %v suspect", ep(1))
	}
	start := tick()
	tick()
	if why, ok := d.corroborates(ep(0), start); ok {
		t.Errorf("probes late: silence corroborated a failed check (%s)", why)
	}
	if _, ok := d.corroborates(ep(1), start); !ok {
		t.Errorf("probes late: the RST did not corroborate a failed check")
	}

	// A long silence of one endpoint while the others answer is its own,
	// late prober or not: it corroborates.
	for n := 1; n <= lateMisses*d.p.missThreshold; n++ {
		now = now.Add(100 * time.Millisecond)
		if n == 2 {
			start = now
		}
		d.Observe(Evidence{Target: ep(3), Kind: EvidenceSilence, Count: n})
	}
	tick()
	if why, ok := d.corroborates(ep(3), start); !ok || !strings.Contains(why, "probes unanswered") {
		t.Errorf("probes late: %d probes unanswered in a row since before the check did not corroborate it (%q)", lateMisses*d.p.missThreshold, why)
	}

	d.SetProbesLate(false)
	tick()
	d.Observe(Evidence{Target: ep(2), Kind: EvidenceSilence, Count: d.p.missThreshold})
	if e := d.eps[ep(2)]; e == nil || e.phase != phaseSuspect {
		t.Errorf("probes on time: silence did not make %v suspect", ep(2))
	}
	start = tick()
	tick()
	if _, ok := d.corroborates(ep(2), start); !ok {
		t.Errorf("probes on time: silence since before the check did not corroborate it")
	}
}
