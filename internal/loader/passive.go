package loader

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// PassiveOptions configure [LoadPassive]. The zero value works.
type PassiveOptions struct {
	Capacity          int                   // real servers the maps hold (at most 1<<24); 0 means 16384
	HandshakeCapacity int                   // slots of an older object's handshake table (benchmarks load them), rounded up to a power of two; 0 means 131072. The current programs keep in-flight handshakes in each real server's entry
	ProbePortLo       uint16                // the SYN prober's reserved source ports, whose answers are not client traffic
	ProbePortHi       uint16                // (0-0: none)
	EventGap          time.Duration         // shortest time between two events of one kind for one real server; 0 means 100ms
	HandshakeSample   int                   // time 1 client handshake in this many (a power of two, at most MaxHandshakeSample; chosen by a hash of the 4-tuple) for the latency histogram; 0 means DefaultHandshakeSample, 1 times every one
	PollInterval      time.Duration         // how often Run reads the counters and sends deltas; 0 means 1s
	EventTail         time.Duration         // after an event's early read, Run reads once more this much later (what the event gap kept quiet); 0 means half of EventGap
	ClientDeltasOnly  bool                  // Run leaves the director's own connections out of the Deltas (Own stays zero) and reads no counters early on their events
	ForceClsact       bool                  // attach with a clsact qdisc even where TCX exists
	NoTracepoints     bool                  // load the TC programs only
	Registerer        prometheus.Registerer // where the metrics go (registered on load, unregistered on Close); nil: none
	Logger            *slog.Logger          // nil discards
}

func (o PassiveOptions) withDefaults() PassiveOptions {
	if o.Capacity <= 0 {
		o.Capacity = 16384
	}
	if o.HandshakeCapacity <= 0 {
		o.HandshakeCapacity = 1 << 17
	}
	if o.EventGap <= 0 {
		o.EventGap = 100 * time.Millisecond
	}
	if o.HandshakeSample <= 0 {
		o.HandshakeSample = DefaultHandshakeSample
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.EventTail <= 0 {
		o.EventTail = o.EventGap / 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// UnavailableError says that a part of the passive observer ("tc" or
// "tracepoints") cannot run here: the kernel lacks a feature or BTF, the
// process lacks a privilege, or the verifier refused a program (then
// [VerifierLog] of it has the log). It matches [ErrNotSupported], so
// callers fall back to active checks alone.
type UnavailableError struct {
	Part string // "tc" or "tracepoints"
	Err  error  // why
}

// Error implements error.
func (e *UnavailableError) Error() string {
	return fmt.Sprintf("passive %s unavailable: %v", e.Part, e.Err)
}

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes every UnavailableError match [ErrNotSupported].
func (e *UnavailableError) Is(target error) bool { return target == ErrNotSupported }

// ErrMapFull is returned (wrapped) by [Passive.SetRealServers] when the
// maps cannot hold every real server; the ones that fit are observed.
var ErrMapFull = errors.New("passive map full")

// maxPassiveCapacity is the most real servers the maps can hold (a limit
// kept from when the handshake table held a slot in 24 bits).
const maxPassiveCapacity = 1 << 24

// What objects older than the per-real-server handshake ways
// (docs/benchmarks.md 17.2) had: a handshake table and its mask. The
// loader still sizes and sets them when an object has them (benchmarks
// load older objects beside the embedded one).
const (
	legacyMapHandshakes = "handshakes"
	legacyVarHsMask     = "hs_mask"
)

// DefaultHandshakeSample is [PassiveOptions.HandshakeSample]'s default:
// 1 client handshake in 8 is timed. The precise clock that times one is
// most of what a SYN costs on a busy director (docs/benchmarks.md 18.2);
// the others take the coarse clock, and are still watched for
// retransmission and refusal.
const DefaultHandshakeSample = 8

// MaxHandshakeSample is the largest [PassiveOptions.HandshakeSample].
const MaxHandshakeSample = 1 << 16

// checkHandshakeSample reports what is wrong with a handshake sample
// rate (after defaults).
func checkHandshakeSample(n int) error {
	if n < 1 || n > MaxHandshakeSample || n&(n-1) != 0 {
		return fmt.Errorf("handshake sample %d: want a power of two from 1 to %d", n, MaxHandshakeSample)
	}
	return nil
}

// localCapacity is the most director addresses the endpoint table holds.
const localCapacity = 4096

// passiveTC is what Passive keeps of the TC object: its programs and
// maps. Its variables are set in the spec before loading and not kept,
// so an object that lacks one the loader may skip (a benchmark's older
// object) still loads.
type passiveTC struct {
	passivePrograms
	passiveMaps
}

// Close closes the programs and maps.
func (o *passiveTC) Close() error {
	return errors.Join(o.passivePrograms.Close(), o.passiveMaps.Close())
}

// Passive is the loaded passive observer: TC programs for the
// real-server-facing links and, where the kernel allows, tracepoints for
// the director's own connections. Its methods are safe for concurrent use.
type Passive struct {
	opts     PassiveOptions
	log      *slog.Logger
	tc       passiveTC
	trace    *passiveTraceObjects // nil when the tracepoints are unavailable
	traceErr error
	links    []link.Link // the tracepoint attachments
	hsSeed   uint64      // the handshake hash's key (tests: which handshakes are timed)

	mu       sync.Mutex
	attached []passiveAttachment
	slots    rsSlots                            // the observed real servers (passive_poll.go)
	ep       *epTable                           // the programs' endpoint table (passive_ep.go)
	dr       map[[rsKeySize]byte]netip.AddrPort // wanted LVS-DR keys (drKey) and their real servers
	drSlot   map[[rsKeySize]byte]uint32         // DR keys in ep, and the slot each names
	locals   map[[rsKeySize]byte]bool           // local keys in ep
	mapFull  uint64                             // real servers left out because a map was full
	closed   bool

	deltas    chan []Delta
	events    chan Event
	poller    passivePoller // the counters the last batch of deltas ran up to (Run's goroutine only)
	dropped   uint64        // events the consumer did not take in time (under mu)
	collector *passiveCollector
	running   sync.Mutex       // held by Run
	onRead    func(why string) // tests: called after each of Run's reads ("start", "event", "tail", "tick")
}

// LoadPassive loads the passive observer into the kernel without
// attaching it to any link; the tracepoints are attached at once (they see
// the sockets of every network namespace; only connections to a real
// server given to [Passive.SetRealServers] count). When the
// TC programs cannot load it returns an [*UnavailableError]; when only the
// tracepoints cannot, it logs that once and goes on ([Passive.TracepointsErr]).
func LoadPassive(opts PassiveOptions) (_ *Passive, err error) {
	opts = opts.withDefaults()
	p := &Passive{
		opts:   opts,
		log:    opts.Logger,
		drSlot: map[[rsKeySize]byte]uint32{},
		locals: map[[rsKeySize]byte]bool{},
		deltas: make(chan []Delta, 1),
		events: make(chan Event, 1024),
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, &UnavailableError{Part: "tc", Err: fmt.Errorf("remove memlock: %w", err)}
	}
	spec, err := passiveSpec()
	if err != nil {
		return nil, &UnavailableError{Part: "tc", Err: fmt.Errorf("load passive spec: %w", err)}
	}
	if opts.Capacity > maxPassiveCapacity {
		return nil, fmt.Errorf("passive capacity %d above %d", opts.Capacity, maxPassiveCapacity)
	}
	if err := checkHandshakeSample(opts.HandshakeSample); err != nil {
		return nil, fmt.Errorf("passive options: %w", err)
	}
	spec.Maps[passiveMapRsStats].MaxEntries = uint32(opts.Capacity)
	buckets := epBuckets(2*opts.Capacity + localCapacity)
	others := uint32(opts.Capacity + localCapacity)
	spec.Maps[passiveMapEndpoints].MaxEntries = buckets
	spec.Maps[passiveMapEpKeys].MaxEntries = others
	slots := uint32(1)
	for slots < uint32(opts.HandshakeCapacity) {
		slots <<= 1
	}
	if m := spec.Maps[legacyMapHandshakes]; m != nil {
		m.MaxEntries = slots // an older object's handshake table
	}
	var seed [16]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("hash seeds: %w", err)
	}
	epSeed := binary.NativeEndian.Uint64(seed[8:])
	hsSeed := binary.NativeEndian.Uint64(seed[:8])
	p.hsSeed = hsSeed
	hsSampleMask := uint32(opts.HandshakeSample - 1)
	if _, err := patchImmediates(spec, map[string]uint64{
		passiveVarEpMask:       uint64(buckets - 1),
		passiveVarEpSeed:       epSeed,
		passiveVarRsSlots:      uint64(opts.Capacity),
		legacyVarHsMask:        uint64(slots - 1),
		passiveVarHsSeed:       hsSeed,
		passiveVarHsSampleMask: uint64(hsSampleMask),
	}); err != nil {
		return nil, fmt.Errorf("passive immediates: %w", err)
	}
	for name, v := range map[string]any{
		passiveVarProbePortLo:  opts.ProbePortLo,
		passiveVarProbePortHi:  opts.ProbePortHi,
		passiveVarEventGapNs:   uint64(opts.EventGap),
		legacyVarHsMask:        slots - 1,
		passiveVarHsSeed:       hsSeed,
		passiveVarEpMask:       buckets - 1,
		passiveVarEpSeed:       epSeed,
		passiveVarGapJiffies:   gapJiffies(opts.EventGap, kernelHZ()),
		passiveVarRsSlots:      uint32(opts.Capacity),
		passiveVarHsSampleMask: hsSampleMask,
	} {
		vs := spec.Variables[name]
		if vs == nil && (name == passiveVarGapJiffies || name == passiveVarRsSlots || name == legacyVarHsMask || name == passiveVarHsSampleMask) {
			continue // older or newer objects (a benchmark's ablation): the coarse clock, no home slots, no handshake table, every handshake timed
		}
		if vs == nil {
			return nil, fmt.Errorf("object has no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("set %s: %w", name, err)
		}
	}
	if err := spec.LoadAndAssign(&p.tc, nil); err != nil {
		if vl := VerifierLog(err); vl != "" {
			p.log.Error("passive TC programs rejected by the verifier", "log", vl)
		}
		return nil, &UnavailableError{Part: "tc", Err: fmt.Errorf("load passive: %w", err)}
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	p.ep = newEPTable(buckets, epSeed, others)
	p.ep.useMaps(p.tc.Endpoints, p.tc.EpKeys)
	if err := p.RefreshLocalAddrs(); err != nil {
		return nil, err
	}
	if !opts.NoTracepoints {
		if terr := p.loadTrace(); terr != nil {
			p.traceErr = terr
			p.log.Warn("passive tracepoints unavailable; the director's own connections are not observed", "error", terr)
		}
	} else {
		p.traceErr = &UnavailableError{Part: "tracepoints", Err: errors.New("disabled")}
	}
	if opts.Registerer != nil {
		p.collector = newPassiveCollector(p)
		if err := opts.Registerer.Register(p.collector); err != nil {
			return nil, fmt.Errorf("register passive metrics: %w", err)
		}
	}
	return p, nil
}

// loadTrace loads and attaches the tracepoint programs, sharing the TC
// object's event ring buffer.
func (p *Passive) loadTrace() error {
	spec, err := loadPassiveTrace()
	if err != nil {
		return &UnavailableError{Part: "tracepoints", Err: fmt.Errorf("load spec: %w", err)}
	}
	spec.Maps[passiveTraceMapOwnTargets].MaxEntries = uint32(p.opts.Capacity)
	if err := spec.Variables[passiveTraceVarEventGapNs].Set(uint64(p.opts.EventGap)); err != nil {
		return fmt.Errorf("set event_gap_ns: %w", err)
	}
	ns, err := ownNetns()
	if err != nil {
		return &UnavailableError{Part: "tracepoints", Err: err}
	}
	if err := spec.Variables[passiveTraceVarOwnNetnsInum].Set(ns); err != nil {
		return fmt.Errorf("set own_netns_inum: %w", err)
	}
	objs := &passiveTraceObjects{}
	err = spec.LoadAndAssign(objs, &ebpf.CollectionOptions{
		MapReplacements: map[string]*ebpf.Map{passiveTraceMapEvents: p.tc.Events},
	})
	if err != nil {
		if vl := VerifierLog(err); vl != "" {
			p.log.Error("passive tracepoints rejected by the verifier", "log", vl)
		}
		return &UnavailableError{Part: "tracepoints", Err: fmt.Errorf("load: %w", err)}
	}
	for _, prog := range []*ebpf.Program{objs.PassiveSetState, objs.PassiveReceiveReset, objs.PassiveRetransmit} {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			for _, l := range p.links {
				l.Close()
			}
			p.links = nil
			objs.Close()
			return &UnavailableError{Part: "tracepoints", Err: fmt.Errorf("attach %s: %w", prog, err)}
		}
		p.links = append(p.links, l)
	}
	p.trace = objs
	return nil
}

// TracepointsErr returns why the tracepoints are not running (an
// [*UnavailableError]), or nil when they are.
func (p *Passive) TracepointsErr() error { return p.traceErr }

// SetRealServers makes the observed real servers exactly targets (TCP
// endpoints as configured), keeping the counters of those already
// observed. Where the maps are full the rest are left out, counted, and
// an error wrapping [ErrMapFull] says how many.
func (p *Passive) SetRealServers(targets []netip.AddrPort) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	want := make(map[netip.AddrPort]bool, len(targets))
	for _, t := range targets {
		want[netip.AddrPortFrom(t.Addr().Unmap(), t.Port())] = true
	}
	var errs []error
	for k, i := range p.slots.byKey {
		t := p.slots.ap[i]
		if want[t] {
			continue
		}
		// Out of the endpoint table first: the programs stop finding
		// the slot before it can be reused.
		if _, err := p.ep.remove(k); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", t, err))
		}
		if p.trace != nil {
			if err := p.trace.OwnTargets.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, fmt.Errorf("remove %s: %w", t, err))
			}
		}
		p.slots.remove(k)
	}
	full := 0
	// In passes (placePass): every new real server whose home slot is
	// free takes it first, then the others their second home, then any
	// free slot, so that a real server placed anywhere never takes
	// another one's home.
	p.slots.round++
	rest := make([]netip.AddrPort, 0, len(want))
	for t := range want {
		rest = append(rest, t)
	}
	for _, pass := range placePasses {
		add := rest
		rest = nil
		for _, t := range add {
			k := encodeRSKey(t)
			if _, ok := p.slots.byKey[k]; ok {
				continue
			}
			switch placed, err := p.addRealServer(k, t, pass); {
			case err == nil && !placed:
				rest = append(rest, t)
			case err == nil:
			case errors.Is(err, errEPFull), errors.Is(err, unix.E2BIG):
				full++
			default:
				errs = append(errs, fmt.Errorf("add %s: %w", t, err))
			}
		}
	}
	if full > 0 {
		p.mapFull += uint64(full)
		errs = append(errs, fmt.Errorf("%d of %d real servers not observed (capacity %d): %w", full, len(want), p.opts.Capacity, ErrMapFull))
	}
	if err := p.syncDR(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// putRSEntry writes slot's rs_stats entry: the key k, every counter and
// handshake way zero. It writes the map's own value size, so that an
// object with another entry layout (a benchmark's older object, whose
// entry starts with the same key) takes it too.
func (p *Passive) putRSEntry(slot uint32, k [rsKeySize]byte) error {
	if int(p.tc.RsStats.ValueSize()) == binary.Size(passivePassiveRsStats{}) {
		return p.tc.RsStats.Put(slot, &passivePassiveRsStats{Key: rsKeyStruct(k)})
	}
	v := make([]byte, p.tc.RsStats.ValueSize())
	copy(v, k[:])
	return p.tc.RsStats.Put(slot, v)
}

// addRealServer gives the real server t (encoded as k) a slot as pass
// says (a home slot or none: placed is false when that is taken; or any),
// zero counters there, and its place in the endpoint table and
// own_targets; on failure it takes back what it did. Under p.mu.
func (p *Passive) addRealServer(k [rsKeySize]byte, t netip.AddrPort, pass placePass) (placed bool, err error) {
	var slot int32
	if pass != placeAny {
		slot = pass.home(p.ep.hash(&k), uint32(p.opts.Capacity))
		if !p.slots.addHome(k, t, slot, p.opts.Capacity) {
			return false, nil
		}
	} else {
		var ok bool
		if slot, ok = p.slots.add(k, t, p.opts.Capacity); !ok {
			return false, errEPFull
		}
	}
	err = p.putRSEntry(uint32(slot), k)
	if err == nil {
		err = p.ep.insert(k, uint32(slot))
		if err == nil && p.trace != nil {
			err = p.trace.OwnTargets.Update(k, passiveTracePassiveOwnStats{}, ebpf.UpdateNoExist)
			if errors.Is(err, ebpf.ErrKeyExist) {
				err = nil
			}
			if err != nil {
				p.ep.remove(k)
			}
		}
	}
	if err != nil {
		p.slots.remove(k)
	}
	return true, err
}

// syncDR makes the endpoint table's DR keys those of p.dr whose real
// server is observed, each naming the real server's current slot. Under
// p.mu.
func (p *Passive) syncDR() error {
	var errs []error
	for k, slot := range p.drSlot {
		if ap, ok := p.dr[k]; ok {
			if i, ok := p.slots.byKey[encodeRSKey(ap)]; ok && uint32(i) == slot {
				continue
			}
		}
		if err := p.ep.removeOther(k); err != nil {
			errs = append(errs, fmt.Errorf("remove DR entry: %w", err))
		}
		delete(p.drSlot, k)
	}
	full := 0
	for k, ap := range p.dr {
		if _, ok := p.drSlot[k]; ok {
			continue
		}
		i, ok := p.slots.byKey[encodeRSKey(ap)]
		if !ok {
			continue // not observed (yet)
		}
		switch err := p.ep.insertOther(k, uint32(i)); {
		case err == nil:
			p.drSlot[k] = uint32(i)
		case errors.Is(err, errEPFull):
			full++
		default:
			errs = append(errs, fmt.Errorf("add DR entry: %w", err))
		}
	}
	if full > 0 {
		p.mapFull += uint64(full)
		errs = append(errs, fmt.Errorf("%d DR real servers not observed: %w", full, ErrMapFull))
	}
	return errors.Join(errs...)
}

// Close detaches everything and frees the programs and maps. A Run in
// progress returns.
func (p *Passive) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var errs []error
	for _, a := range p.attached {
		errs = append(errs, a.detach())
	}
	p.attached = nil
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	if p.collector != nil && p.opts.Registerer != nil {
		p.opts.Registerer.Unregister(p.collector)
	}
	if p.trace != nil {
		errs = append(errs, p.trace.Close())
	}
	errs = append(errs, p.tc.Close())
	return errors.Join(errs...)
}

// PassiveStats are the kernel-side counters of the passive programs, and
// the loader's own, summed over CPUs.
type PassiveStats struct {
	// HandshakePackets counts the TCP packets the programs examined: SYNs
	// toward the real servers, SYN-ACKs and RSTs from them (of any
	// endpoint). Data segments and ACKs are not counted (a per-CPU add per
	// packet was a third of a cold data packet's cost, docs/benchmarks.md
	// 16.2); until session 7 this was every TCP packet parsed.
	HandshakePackets uint64
	NotIP            uint64 // non-IP frames passed uncounted
	NotTCP           uint64 // UDP, ICMP, ... passed uncounted
	Fragments        uint64 // IPv4 fragments passed uncounted
	IPv6ExtHeaders   uint64 // IPv6 packets with extension headers passed uncounted
	Truncated        uint64 // truncated or malformed headers passed uncounted
	UnknownRS        uint64 // handshake packets of no configured real server
	HandshakeFull    uint64 // client SYNs not tracked: their real server's eight handshake ways were all in flight (a sample of its handshakes is timed and watched)
	HandshakeMissed  uint64 // SYN-ACKs without a tracked SYN (displaced, answered twice, or an asymmetric path)
	RingFull         uint64 // events lost: ring buffer full
	OwnFull          uint64 // own connects not timed: table full
	MapFull          uint64 // real servers left out of the maps: capacity reached (Go side)
	Dropped          uint64 // events the consumer did not take in time (Go side)
}

// Stats reads the counters.
func (p *Passive) Stats() (PassiveStats, error) {
	var st PassiveStats
	dst := []*uint64{&st.HandshakePackets, &st.NotIP, &st.NotTCP, &st.Fragments, &st.IPv6ExtHeaders, &st.Truncated,
		&st.UnknownRS, &st.HandshakeFull, &st.HandshakeMissed, &st.RingFull, &st.OwnFull}
	maps := []*ebpf.Map{p.tc.Stats}
	if p.trace != nil {
		maps = append(maps, p.trace.Stats)
	}
	for _, m := range maps {
		for i, d := range dst {
			var per []uint64
			if err := m.Lookup(uint32(i), &per); err != nil {
				return st, fmt.Errorf("read passive stats: %w", err)
			}
			for _, v := range per {
				*d += v
			}
		}
	}
	p.mu.Lock()
	st.MapFull, st.Dropped = p.mapFull, p.dropped
	p.mu.Unlock()
	return st, nil
}

// Programs returns the TC programs (egress, ingress), for tests and
// benchmarks that run them with BPF_PROG_TEST_RUN.
func (p *Passive) Programs() (egress, ingress *ebpf.Program) {
	return p.tc.PassiveEgress, p.tc.PassiveIngress
}

// RefreshLocalAddrs makes the programs' set of the director's own
// addresses (answers to them are not client traffic) those of the calling
// thread's network namespace now. [Passive.Run] calls it every
// LocalAddrRefresh.
func (p *Passive) RefreshLocalAddrs() (err error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list local addresses: %w", err)
	}
	want := map[[rsKeySize]byte]bool{}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		want[localKey(ip)] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	// The filter holds the old and the new addresses while the table
	// changes (a set bit only sends a lookup to the table), then the new.
	if err := p.writeLocalFilter(p.locals, want); err != nil {
		return err
	}
	defer func() {
		if err == nil {
			err = p.writeLocalFilter(p.locals)
		}
	}()
	for k := range p.locals {
		if want[k] {
			continue
		}
		if err := p.ep.removeOther(k); err != nil {
			return fmt.Errorf("delete local address: %w", err)
		}
		delete(p.locals, k)
	}
	for k := range want {
		if p.locals[k] {
			continue
		}
		if err := p.ep.insertOther(k, 0); err != nil {
			return fmt.Errorf("add local address: %w", err)
		}
		p.locals[k] = true
	}
	return nil
}

// writeLocalFilter writes the filter of the director's addresses for the
// union of keys.
func (p *Passive) writeLocalFilter(keys ...map[[rsKeySize]byte]bool) error {
	bits := p.ep.localBits(keys...)
	if err := p.tc.LocalFilter.Put(uint32(0), &bits); err != nil {
		return fmt.Errorf("write local address filter: %w", err)
	}
	return nil
}

// DRKey names an LVS-DR real server as the director's links see it: the
// link-layer address its frames go to, and the port (the virtual
// service's, which DR keeps).
type DRKey struct {
	MAC  [6]byte
	Port uint16
}

// SetDirectRouted makes the programs count client SYNs sent to the
// link-layer address and port of each key for the real server it maps
// to (which must be one of [Passive.SetRealServers]'): in LVS-DR the IP
// destination is the virtual address, so the real server is known by its
// MAC only. It replaces the previous set.
func (p *Passive) SetDirectRouted(rs map[DRKey]netip.AddrPort) error {
	want := make(map[[rsKeySize]byte]netip.AddrPort, len(rs))
	for k, ap := range rs {
		want[drKey(k)] = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	p.dr = want
	return p.syncDR()
}

// ownNetns returns the inode number of the calling thread's network
// namespace: the tracepoints count only the sockets of that namespace as
// the director's own.
func ownNetns() (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("find the network namespace: %w", err)
	}
	return uint32(st.Ino), nil
}

// passiveSpec returns the TC programs' collection spec: the embedded
// object, or in benchmarks an ablation variant of it (see
// BenchmarkPassiveBusy).
var passiveSpec = loadPassive
