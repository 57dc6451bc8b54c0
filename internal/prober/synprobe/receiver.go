package synprobe

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/lvsprobe/lvsprobe/internal/loader"
)

// receiver hands up packets that look like answers to our probes.
type receiver interface {
	// run calls deliver for each packet (from its network header on;
	// pkt is valid only during the call) until ctx is done, and, at
	// least every few milliseconds, drained with a ktime before which
	// every packet has been delivered.
	run(ctx context.Context, deliver func(ktimeNs uint64, pkt []byte, wireLen int), drained func(upToNs uint64)) error
	close() error
	// name is "ebpf" or "packet", for logs and metrics.
	name() string
	// watch makes sure answers arriving on the interface are received
	// (a no-op for a receiver that sees every interface).
	watch(ifindex int) error
}

// ebpfReceiver is the TC ingress program of bpf/synprobe.c.
type ebpfReceiver struct {
	sp  *loader.SynProbe
	log *slog.Logger

	mu       sync.Mutex
	attached map[int]bool // ifindexes it is attached to

	// The non-blocking reader the send loop drains (see poll), and
	// the callbacks it hands answers through.
	rd            *loader.AnswerReader
	deliverAnswer func(*loader.Answer)
	deliverTo     func(uint64, []byte, int)
}

// newEBPFReceiver loads the program and attaches it to the ingress of
// each named interface in the caller's network namespace; [Prober.Add]
// attaches it to more as targets need them. Its ring buffer holds at
// least ringRecords answers. Unless kernelRST, the program answers each
// SYN-ACK to this host with its RST (see bpf/synprobe.c).
func newEBPFReceiver(ports portRange, ifaces []string, ringRecords int, kernelRST bool, log *slog.Logger) (*ebpfReceiver, error) {
	sp, err := loader.LoadSynProbe(loader.SynProbeOptions{PortLo: ports.lo, PortHi: ports.hi, RingRecords: ringRecords, KernelRST: kernelRST, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("ebpf receiver: %w", err)
	}
	r := &ebpfReceiver{sp: sp, log: log, attached: map[int]bool{}}
	for _, name := range ifaces {
		ifi, err := net.InterfaceByName(name)
		if err == nil {
			err = r.watch(ifi.Index)
		}
		if err != nil {
			sp.Close()
			return nil, fmt.Errorf("ebpf receiver: %w", err)
		}
	}
	return r, nil
}

// watch attaches the program to the interface's ingress, once.
func (r *ebpfReceiver) watch(ifindex int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.attached[ifindex] {
		return nil
	}
	how, err := r.sp.Attach(ifindex)
	if err != nil {
		return fmt.Errorf("attach receiver: %w", err)
	}
	r.attached[ifindex] = true
	r.log.Debug("synprobe receiver attached", "ifindex", ifindex, "hook", how)
	return nil
}

func (r *ebpfReceiver) run(ctx context.Context, deliver func(uint64, []byte, int), drained func(uint64)) error {
	return r.sp.ReadAnswers(ctx, func(a *loader.Answer) { deliver(a.KtimeNs, a.Packet, a.WireLen) }, drained)
}

func (r *ebpfReceiver) close() error { return r.sp.Close() }
func (r *ebpfReceiver) name() string { return "ebpf" }

// lost returns the answers the kernel side dropped (ring buffer full).
func (r *ebpfReceiver) lost() uint64 {
	st, err := r.sp.Stats()
	if err != nil {
		return 0
	}
	return st.RingFull
}

// receiverStats reads the eBPF receiver's counters; false without one.
func (p *Prober) receiverStats() (loader.Stats, bool) {
	r, ok := p.recv.(*ebpfReceiver)
	if !ok {
		return loader.Stats{}, false
	}
	st, err := r.sp.Stats()
	return st, err == nil
}
