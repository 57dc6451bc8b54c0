package synprobe

import (
	"context"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/loader"
	"golang.org/x/time/rate"
)

// sendLoop sends due probes in batches, paced by the global token bucket.
func (p *Prober) sendLoop(ctx context.Context) error {
	lim := rate.NewLimiter(rate.Limit(p.cfg.PPS), max(p.cfg.Batch, p.cfg.PPS/100))
	batch4 := make([]probe, 0, p.cfg.Batch)
	batch6 := make([]probe, 0, p.cfg.Batch)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := loader.Ktime()
		// Probes due within the next tick go now: one wakeup sends a
		// batch instead of one probe every few microseconds.
		batch4, batch6 = p.collect(now, now+uint64(sendTick), batch4[:0], batch6[:0])
		for _, b := range [][]probe{batch4, batch6} {
			if len(b) == 0 {
				continue
			}
			if err := lim.WaitN(ctx, len(b)); err != nil {
				return ctx.Err()
			}
			p.stamp(b)
			p.sendMu.Lock()
			n, err := p.snd.send(b)
			p.sendMu.Unlock()
			p.m.sent.Add(float64(n))
			if err != nil {
				p.m.sendErrors.Add(float64(len(b) - n))
				p.log.Debug("send probes", "err", err)
			}
		}
		if len(batch4)+len(batch6) > 0 {
			continue // more may be due already
		}
		wait := time.Second
		p.mu.Lock()
		if t := p.due.peek(); t != nil {
			wait = time.Duration(t.next - min(t.next, loader.Ktime()))
		}
		p.mu.Unlock()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.wake:
		case <-timer.C:
		}
	}
}

// sendTick is the granularity of the send loop: a probe may leave up to
// this much before it is due.
const sendTick = time.Millisecond

// collect takes the targets due by horizon (up to a batch of each family),
// settles their previous probe (a miss when unanswered) and prepares the
// next one. The send time is stamped here, just before the send.
func (p *Prober) collect(now, horizon uint64, b4, b6 []probe) ([]probe, []probe) {
	p.mu.Lock()
	defer p.mu.Unlock()
	size := uint32(p.ports.size())
	for {
		t := p.due.peek()
		if t == nil || t.next > horizon || len(b4) == cap(b4) || len(b6) == cap(b6) {
			return b4, b6
		}
		if t.cur.gen != 0 {
			t.cur.untilNs = now
			if !t.cur.answered {
				p.unsettled = append(p.unsettled, settlement{t: t, gen: t.cur.gen, untilNs: now})
			}
		}
		t.prev = t.cur
		t.gen++
		t.cur = sent{gen: t.gen, lport: p.ports.lo + uint16((t.base+t.gen)%size), sentNs: now}
		t.state.Sent++
		pr := probe{local: t.local, remote: t.addr.Addr(), lport: t.cur.lport, rport: t.addr.Port(), t: t, gen: t.cur.gen}
		pr.seq = p.cookies.seq(pr.local, pr.remote, pr.lport, pr.rport)
		if pr.remote.Is4() {
			b4 = append(b4, pr)
		} else {
			b6 = append(b6, pr)
		}
		t.next += t.interval
		if t.next <= now { // fell behind (pps cap, a pause): skip, don't burst
			t.next = now + t.interval
		}
		p.due.reschedule(t)
	}
}

// stamp records the send time of a batch about to leave (after the token
// bucket's wait, so that a paced probe's RTT does not include it).
func (p *Prober) stamp(b []probe) {
	now := loader.Ktime()
	p.mu.Lock()
	for i := range b {
		if t := b[i].t; t.cur.gen == b[i].gen {
			t.cur.sentNs = now
		}
	}
	p.mu.Unlock()
}
