package synprobe

import (
	"fmt"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/loader"
)

// poller is a receiver that the send loop drains on its own wakeups
// instead of running a goroutine of its own: answers then cost no wakeup,
// no blocking system call (whose return hands the P back and forth
// between threads) and no lock contention with the sender.
type poller interface {
	// poll hands up every packet received so far, without blocking,
	// through deliver, and returns a ktime before which every packet
	// has been handed up.
	poll(deliver func(ktimeNs uint64, pkt []byte, wireLen int)) (upToNs uint64, err error)
	// closePoll releases what poll opened.
	closePoll() error
}

// poll drains the ring buffer of the eBPF receiver.
func (r *ebpfReceiver) poll(deliver func(uint64, []byte, int)) (uint64, error) {
	if r.rd == nil {
		rd, err := r.sp.NewAnswerReader()
		if err != nil {
			return 0, fmt.Errorf("ebpf receiver: %w", err)
		}
		r.rd = rd
		r.deliverAnswer = func(a *loader.Answer) { r.deliverTo(a.KtimeNs, a.Packet, a.WireLen) }
	}
	r.deliverTo = deliver
	return r.rd.Drain(r.deliverAnswer)
}

func (r *ebpfReceiver) closePoll() error {
	if r.rd == nil {
		return nil
	}
	err := r.rd.Close()
	r.rd = nil
	return err
}

// Polling: while answers may still come (a probe left within the last
// pollSpan), the send loop wakes at least every tick after a send or a
// drain that found something, and backs off, doubling, to pollMax while
// drains find nothing. An answer thus reaches the signals at most a tick
// late while they flow (its RTT is the kernel's timestamp, unaffected),
// and a probe's miss is declared within a tick of its successor's
// departure. A probe not answered yet also wakes the loop just after its
// own deadline (its departure plus its target's interval, deadline.go),
// at most once a tick: a backed-off prober, whose sends are further
// apart, declares the miss within a tick of that deadline. A quiet
// prober wakes only to send. A loop that sends every tick drains on the
// same wakeups and wakes for nothing else. The tick is the send loop's
// (tick.go): 10 ms, shorter at high rates, at most maxGridTick on a
// small prober's grid; a RST wakes the loop at once whatever the tick
// (notify.go).
const (
	pollMax  = 64 * time.Millisecond
	pollSpan = time.Second
)

// pollAnswers drains a polled receiver through deliver (which validates
// each answer), declares the misses it can and hands the signals over.
func (p *Prober) pollAnswers(pl poller, deliver func(uint64, []byte, int)) error {
	upTo, err := pl.poll(deliver)
	if err != nil {
		return err
	}
	p.settleMisses(upTo)
	return nil
}

// settleWait returns how long the send loop, which last drained at
// polledAt and now is at now, waits to settle a probe not answered yet
// whose own deadline is deadline (ktimes): until just after the deadline
// (a backed-off prober's next send may be much later), but no sooner than
// a tick after the last drain, so that the deadlines of many silent
// targets (a switch down) wake the loop at most once a tick.
func settleWait(deadline, polledAt, now uint64, tick time.Duration) time.Duration {
	at := max(deadline+1, polledAt+uint64(tick))
	return time.Duration(at - min(at, now))
}
