package loader

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Delivery selects how the SYN-probe receiver hands answers to Go.
type Delivery int

const (
	// RingBuffer sends one record per answer, headers included, through
	// a BPF ring buffer. It is the default: it is faster (see
	// internal/prober/synprobe's benchmarks) and loses nothing between reads.
	RingBuffer Delivery = iota
	// TargetMap keeps only the newest answer of each kind per target in
	// an LRU hash that Go reads in batches.
	TargetMap
)

// String names the delivery for logs and metrics.
func (d Delivery) String() string {
	if d == TargetMap {
		return "map"
	}
	return "ringbuf"
}

// SynProbeOptions configure [LoadSynProbe].
type SynProbeOptions struct {
	PortLo, PortHi uint16        // the prober's reserved source ports, inclusive
	Delivery       Delivery      // how answers reach Go
	ForceClsact    bool          // attach with a clsact qdisc even where TCX exists
	PollInterval   time.Duration // longest delay of an answer in the ring buffer; 0 means 2ms
	RingRecords    int           // answers the ring buffer holds at least (sized by [RingBytesFor]); 0 keeps the program's 4 MiB
	// KernelRST leaves the answers to the director's stack, which resets
	// every SYN-ACK itself (the old path, kept as a fallback and for
	// measurements). By default the program answers a SYN-ACK to this
	// host with the RST itself, out of the device it came in on, and
	// drops a RST to this host once recorded, so the stack never sees
	// a probe answer.
	KernelRST bool
	// RSTWakeGap is the least time between two wake-ups of the ring's
	// readers for RSTs; 0 keeps the program's 1 ms.
	RSTWakeGap time.Duration
	Logger     *slog.Logger // nil discards
}

// SynProbe is the loaded SYN-probe receiver. Its methods are safe for
// concurrent use; Close detaches it from every interface.
type SynProbe struct {
	objs     synprobeObjects
	opts     SynProbeOptions
	log      *slog.Logger
	poll     time.Duration
	mu       sync.Mutex
	attached []attachment
	closed   bool
}

// LoadSynProbe loads the receiver into the kernel without attaching it.
// A verifier rejection is returned wrapped (see [VerifierLog]) and its log
// is written to the logger; a kernel without the needed features yields an
// error matching [ErrNotSupported].
func LoadSynProbe(opts SynProbeOptions) (*SynProbe, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.PortLo == 0 || opts.PortHi < opts.PortLo {
		return nil, fmt.Errorf("load synprobe: bad port range %d-%d", opts.PortLo, opts.PortHi)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock: %w", err)
	}
	spec, err := loadSynprobe()
	if err != nil {
		return nil, fmt.Errorf("load synprobe spec: %w", err)
	}
	if err := spec.Variables[synprobeVarPortLo].Set(opts.PortLo); err != nil {
		return nil, fmt.Errorf("set port_lo: %w", err)
	}
	if err := spec.Variables[synprobeVarPortHi].Set(opts.PortHi); err != nil {
		return nil, fmt.Errorf("set port_hi: %w", err)
	}
	if opts.KernelRST {
		if err := spec.Variables[synprobeVarAnswerRst].Set(uint8(0)); err != nil {
			return nil, fmt.Errorf("set answer_rst: %w", err)
		}
	}
	for _, v := range []struct{ name, sysctl string }{
		{synprobeVarRstTtl, "/proc/sys/net/ipv4/ip_default_ttl"},
		{synprobeVarRstHopLimit, "/proc/sys/net/ipv6/conf/all/hop_limit"},
	} {
		if ttl, ok := readTTL(v.sysctl); ok {
			if err := spec.Variables[v.name].Set(ttl); err != nil {
				return nil, fmt.Errorf("set %s: %w", v.name, err)
			}
		}
	}
	if opts.RSTWakeGap > 0 {
		if err := spec.Variables[synprobeVarRstWakeGapNs].Set(uint64(opts.RSTWakeGap.Nanoseconds())); err != nil {
			return nil, fmt.Errorf("set rst_wake_gap_ns: %w", err)
		}
	}
	if opts.RingRecords > 0 {
		spec.Maps[synprobeMapAnswers].MaxEntries = uint32(RingBytesFor(opts.RingRecords))
	}
	s := &SynProbe{opts: opts, log: log, poll: opts.PollInterval}
	if s.poll <= 0 {
		s.poll = 2 * time.Millisecond
	}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		recordLoad(synprobeName, false)
		if vl := VerifierLog(err); vl != "" {
			log.Error("synprobe rejected by the verifier", "log", vl)
		}
		if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("load synprobe: %w: %w", ErrNotSupported, err)
		}
		return nil, fmt.Errorf("load synprobe: %w", err)
	}
	recordLoad(synprobeName, true)
	return s, nil
}

// synprobeName names the SYN-probe receiver in the status metrics.
const synprobeName = "synprobe"

func (s *SynProbe) program() *ebpf.Program {
	if s.opts.Delivery == TargetMap {
		return s.objs.SynprobeMap
	}
	return s.objs.SynprobeRb
}

// Delivery reports how this receiver hands answers up.
func (s *SynProbe) Delivery() Delivery { return s.opts.Delivery }

// Program returns the loaded program for the chosen delivery (for tests
// and benchmarks that run it with BPF_PROG_TEST_RUN).
func (s *SynProbe) Program() *ebpf.Program { return s.program() }

// Close detaches the receiver and frees its programs and maps.
func (s *SynProbe) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, a := range s.attached {
		errs = append(errs, a.detach())
	}
	s.attached = nil
	errs = append(errs, s.objs.Close())
	recordClose(synprobeName)
	return errors.Join(errs...)
}

// Stats are the receiver's kernel-side counters, summed over CPUs.
type Stats struct {
	Matched    uint64 // packets that looked like answers to our probes
	RingFull   uint64 // answers lost because the ring buffer was full
	MapFull    uint64 // answers lost because the target map was full
	RSTSent    uint64 // SYN-ACKs the program turned into its RST and sent back
	RSTDropped uint64 // RSTs to this host the program dropped once recorded
	RSTKernel  uint64 // SYN-ACKs to this host left to the stack's RST (IP options, payload, a failed helper)
	RSTBroken  uint64 // SYN-ACKs dropped half rewritten (a helper failed mid-way)
}

// Stats reads the kernel-side counters.
func (s *SynProbe) Stats() (Stats, error) {
	var st Stats
	for i, dst := range []*uint64{&st.Matched, &st.RingFull, &st.MapFull, &st.RSTSent, &st.RSTDropped, &st.RSTKernel, &st.RSTBroken} {
		var per []uint64
		if err := s.objs.Stats.Lookup(uint32(i), &per); err != nil {
			return st, fmt.Errorf("read synprobe stats: %w", err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	return st, nil
}

// LastAnswer is one entry of the per-target map ([TargetMap] delivery).
type LastAnswer struct {
	Target      netip.AddrPort // the answering server
	SynAckNs    uint64         // ktime of the newest SYN-ACK, 0 if none
	SynAckAck   uint32         // its acknowledgement number
	SynAckDport uint16         // our source port it answered
	RstNs       uint64         // ktime of the newest RST, 0 if none
	RstAck      uint32         // its acknowledgement number
	RstDport    uint16         // our source port it answered
	Count       uint32         // answers seen for this target
}

// ReadLast reads the whole per-target map in batches, appending to dst.
func (s *SynProbe) ReadLast(dst []LastAnswer) ([]LastAnswer, error) {
	const batch = 4096
	keys := make([]synprobeSynprobeTarget, batch)
	vals := make([]synprobeSynprobeLast, batch)
	var cur ebpf.MapBatchCursor
	for {
		n, err := s.objs.LastAnswer.BatchLookup(&cur, keys, vals, nil)
		for i := range n {
			dst = append(dst, lastAnswer(&keys[i], &vals[i]))
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return dst, nil
		}
		if err != nil {
			return dst, fmt.Errorf("read target map: %w", err)
		}
	}
}

func lastAnswer(k *synprobeSynprobeTarget, v *synprobeSynprobeLast) LastAnswer {
	var addr netip.Addr
	if k.Family == 4 {
		addr = netip.AddrFrom4([4]byte(k.Addr[:4]))
	} else {
		addr = netip.AddrFrom16(k.Addr)
	}
	port := k.Port>>8 | k.Port<<8 // network order in the key
	return LastAnswer{
		Target:   netip.AddrPortFrom(addr, port),
		SynAckNs: v.SynackNs, SynAckAck: v.SynackAck, SynAckDport: v.SynackDport,
		RstNs: v.RstNs, RstAck: v.RstAck, RstDport: v.RstDport,
		Count: v.Count,
	}
}

// readTTL reads a TTL sysctl of the caller's network namespace; ok is
// false where it is missing or out of range (the program keeps 64).
func readTTL(path string) (uint8, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v < 1 || v > 255 {
		return 0, false
	}
	return uint8(v), true
}
