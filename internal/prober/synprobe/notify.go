package synprobe

import (
	"sync"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/loader"
)

// notifying is a polled receiver that can also tell when an answer should
// not wait for the send loop's next drain: the eBPF program wakes its
// ring buffer's readers on every RST (a real server stopped listening),
// never for a SYN-ACK.
type notifying interface {
	newNotifier() (*loader.AnswerNotifier, error)
}

func (r *ebpfReceiver) newNotifier() (*loader.AnswerNotifier, error) { return r.sp.NewAnswerNotifier() }

// rstWakeGap is the least time between two wake-ups of the send loop by
// RSTs: real servers that stay dead answer every probe with a RST, and
// those wake-ups must not cost more than the loop's own tick. The
// program wakes the notifier for a RST at most once a millisecond
// (bpf/synprobe.c rst_wake_gap_ns, less than this), so after the gap the
// loop drains once more: the RSTs that came within it woke nobody.
const rstWakeGap = 2 * time.Millisecond

// wakeOnRST wakes the send loop (p.wake) each time the receiver reports a
// RST, so that the RST is drained, validated and handed to the detector
// at once instead of on the loop's next tick (up to sendTick later). It
// returns the function that stops it; where the receiver cannot notify,
// it does nothing.
func (p *Prober) wakeOnRST() (stop func()) {
	nr, ok := p.recv.(notifying)
	if !ok {
		return func() {}
	}
	n, err := nr.newNotifier()
	if err != nil {
		p.log.Debug("RSTs wait for the send loop's tick", "err", err)
		return func() {}
	}
	var wg sync.WaitGroup
	wake := func() {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	wg.Go(func() {
		for n.Wait() == nil {
			wake()
			// Rate limit. A RST in the gap either woke the ring (the
			// next Wait returns at once) or came within the program's
			// own gap and woke nobody: this drain takes it.
			time.Sleep(rstWakeGap)
			wake()
		}
	})
	return func() {
		if err := n.Interrupt(); err != nil {
			p.log.Warn("stop the RST notifier", "err", err)
			return // the waiter may be blocked for good: leave it
		}
		wg.Wait()
		if err := n.Close(); err != nil {
			p.log.Warn("close the RST notifier", "err", err)
		}
	}
}
