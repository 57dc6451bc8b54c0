package prober

import (
	"testing"
	"time"
)

// TestDetectorProbesLate: while the SYN prober says its timing is
// unreliable (a starved director), silence still suspects an endpoint (a
// wrong suspicion costs one check) but does not cut a failed check's
// ladder (a late drain can lose answers that overflow the ring), and a
// RST still does; once the probes are on time again, silence cuts again.
func TestDetectorProbesLate(t *testing.T) {
	now := time.Unix(1000, 0)
	d := fastDetectorAt(t, forgetConf(t, 3), &now)
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
