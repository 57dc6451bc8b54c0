package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/loader"
	"github.com/lvsprobe/lvsprobe/internal/prober"
	"github.com/lvsprobe/lvsprobe/internal/prober/synprobe"
	"github.com/prometheus/client_golang/prometheus"
)

// registerDetectorFlag adds --detector to fs.
func registerDetectorFlag(fs *flag.FlagSet, mode *string) {
	fs.StringVar(mode, "detector", "fast", "failure detector policy: fast (a corroborated failed check takes a real server out at once; "+
		"flapping recoveries held back), compatible (keepalived's exact retry ladder; fast signals only run checks sooner), "+
		"or off (fast signals ignored)")
}

// validDetector reports whether mode is a --detector value.
func validDetector(mode string) bool {
	return mode == "fast" || mode == "compatible" || mode == "off"
}

// startDetector attaches the failure detector to sched, its metrics to
// reg; nil when --detector=off.
func startDetector(log *slog.Logger, mode string, sched *prober.Scheduler, reg prometheus.Registerer) (*prober.Detector, error) {
	if mode == "off" {
		log.Info("failure detector off (--detector=off): fast signals are not acted on")
		return nil, nil
	}
	m, err := prober.ParseDetectorMode(mode)
	if err != nil {
		return nil, err
	}
	d, err := prober.NewDetector(sched, prober.DetectorOptions{Mode: m, Log: log.With("component", "detector"), Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("start detector: %w", err)
	}
	log.Info("failure detector on", "mode", m.String())
	return d, nil
}

// healthChanges runs the detector when there is one and returns where
// the health changes to apply come from: the detector (which damps and
// explains them) or the scheduler itself.
func healthChanges(ctx context.Context, det *prober.Detector, sched *prober.Scheduler, run func(func())) <-chan prober.Transition {
	if det == nil {
		return sched.Transitions()
	}
	run(func() { _ = det.Run(ctx) })
	return det.Transitions()
}

// detectorStatus is the status document's view of det; nil when off.
func detectorStatus(det *prober.Detector) func() *detectorView {
	if det == nil {
		return nil
	}
	return func() *detectorView {
		st := det.Status()
		pen := make(map[config.RealServerKey]float64, len(st.Damping))
		for _, d := range st.Damping {
			pen[d.Key] = d.Penalty
		}
		eps := make(map[netip.AddrPort]string, len(st.Endpoints))
		for _, e := range st.Endpoints {
			eps[e.Endpoint] = e.State
		}
		return &detectorView{
			Mode:    st.Mode,
			Penalty: func(k config.RealServerKey) (float64, bool) { p, ok := pen[k]; return p, ok },
			State: func(a netip.AddrPort) (string, bool) {
				s, ok := eps[netip.AddrPortFrom(a.Addr().Unmap(), a.Port())]
				return s, ok
			},
		}
	}
}

// feedDetector makes the SYN prober's signals evidence for det.
func (s *synProbe) feedDetector(det *prober.Detector) {
	if s == nil || det == nil {
		return
	}
	s.det.Store(det)
}

// observe hands one batch of signals to the detector, if there is one.
// The consume goroutine calls it; evs is its scratch.
func (s *synProbe) observe(batch []synprobe.Signal) {
	det := s.det.Load()
	if det == nil {
		return
	}
	det.SetProbesLate(s.p.BackedOff())
	now := time.Now()
	kn := loader.Ktime()
	s.evs = s.evs[:0]
	for _, sig := range batch {
		ev := prober.Evidence{Target: sig.Target, RTT: sig.RTT, At: wallOf(sig.Stamp, now, kn)}
		switch sig.Kind {
		case synprobe.SynAck:
			ev.Kind = prober.EvidenceSynAck
		case synprobe.Reset:
			ev.Kind = prober.EvidenceReset
		case synprobe.Miss:
			ev.Kind, ev.Count = prober.EvidenceSilence, sig.ConsecutiveMisses
		default:
			continue
		}
		s.evs = append(s.evs, ev)
		if len(s.evs) == observeChunk {
			det.Observe(s.evs...)
			s.evs = s.evs[:0]
		}
	}
	det.Observe(s.evs...)
}

// observeChunk bounds the evidence handed to the detector at once, and so
// the scratch slice kept between batches: a batch can hold a signal for
// every target (10,000 of them: 1.7 MB kept for good at the largest
// batch's size).
const observeChunk = 256

// wallOf turns k, a CLOCK_MONOTONIC stamp in ns (loader.Ktime's clock),
// into wall-clock time, given now and kn, the same instant on both
// clocks. A stamp of 0 or from the future (it cannot be) is now: the
// evidence is then dated when it is handed over.
func wallOf(k uint64, now time.Time, kn uint64) time.Time {
	if k == 0 || k > kn {
		return now
	}
	return now.Add(-time.Duration(kn - k))
}
