package synprobe

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/loader"
)

// target is the prober's state for one address and port.
type target struct {
	addr     netip.AddrPort
	path     *path  // the way its probes leave: shared with the targets on the same route
	interval uint64 // ns
	next     uint64 // ktime ns when the next probe is due
	slot     int32  // its slot in the due heap, -1 when not in it
	gen      uint32 // probes sent, picks the source port
	// answeredGen is the newest answered probe: a miss settled after a
	// later probe was answered does not count as consecutive.
	answeredGen uint32
	base        uint32 // per-target offset into the port range
	// doneBits has bit gen%64 set when probe gen was answered or
	// declared missed (the bit is cleared when gen+64 is sent): each
	// probe is settled once, by whichever of its deadlines comes first
	// (deadline.go), and a miss settled late, after its probe left cur
	// and prev, still knows whether it was answered.
	doneBits uint64

	// The newest probe and the one before it. An answer counts for the
	// probe it acknowledges if it reached the kernel (its ktime) before
	// the next probe left; a probe unanswered at its deadline (its
	// successor's departure or, if earlier, its own departure plus
	// interval) is a miss, settled once the receiver has drained
	// everything older (see settleMisses and deadline.go).
	cur, prev sent

	state targetCounts
}

// path is the way probes leave for the targets of one route: the source
// address, the interface, the next hop, and the prebuilt frame for the
// packet-socket sender once the next hop's MAC address is known (nil until
// then, and on paths that are not Ethernet; kept up to date by
// refreshFrames). The targets on one route share it (they were 64 bytes
// of every target: 0.5 MB at 10,000). Guarded by the prober's mu.
type path struct {
	local   netip.Addr
	hop     netip.Addr
	ifindex int
	frame   *frame
	users   int // targets using it; it leaves Prober.paths at 0
}

// pathKey is a route: the targets with the same one share a path.
type pathKey struct {
	local, hop netip.Addr
	ifindex    int
}

// usePath returns the path of a route, shared, counting one more user.
// The caller holds p.mu.
func (p *Prober) usePath(local netip.Addr, ifindex int, hop netip.Addr) *path {
	k := pathKey{local: local, hop: hop, ifindex: ifindex}
	pa := p.paths[k]
	if pa == nil {
		pa = &path{local: local, hop: hop, ifindex: ifindex}
		p.paths[k] = pa
	}
	pa.users++
	return pa
}

// dropPath counts one user of pa less, forgetting it at none. The caller
// holds p.mu.
func (p *Prober) dropPath(pa *path) {
	if pa.users--; pa.users <= 0 {
		delete(p.paths, pathKey{local: pa.local, hop: pa.hop, ifindex: pa.ifindex})
	}
}

// targetCounts is a target's TargetState without the address the target
// holds already (TargetState's 32 bytes more moved target from the
// 240-byte size class to 288: 0.5 MB at 10,000 targets).
type targetCounts struct {
	ConsecutiveMisses int
	LastRTT           time.Duration
	Sent, Answered    uint64
	SynAckSeen        bool
	RSTSeen           bool
}

// snapshot returns t's TargetState.
func (t *target) snapshot() TargetState {
	c := &t.state
	return TargetState{Target: t.addr, ConsecutiveMisses: c.ConsecutiveMisses, LastRTT: c.LastRTT,
		SynAckSeen: c.SynAckSeen, RSTSeen: c.RSTSeen, Sent: c.Sent, Answered: c.Answered}
}

// sent is one probe, as its target remembers it.
type sent struct {
	gen      uint32 // its number among the target's probes, from 1
	lport    uint16 // the source port it left from
	sentNs   uint64 // ktime when it left
	untilNs  uint64 // ktime when the next probe left (0 while newest)
	answered bool
}

// settlement is a probe to declare missed, unless answered or missed
// already, once the receiver has drained every answer older than untilNs
// (one of its two deadlines, deadline.go).
type settlement struct {
	t       *target
	gen     uint32
	untilNs uint64
}

// Add starts probing addr every interval (0 for the configured default).
// Adding a target twice changes its interval. The eBPF receiver is
// attached to the interface the kernel routes addr through, if it is not
// already.
func (p *Prober) Add(addr netip.AddrPort, interval time.Duration) error {
	if !addr.IsValid() || addr.Port() == 0 {
		return fmt.Errorf("add target %v: needs an address and a port", addr)
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if interval <= 0 {
		interval = p.cfg.Interval
	}
	local, err := localAddrFor(addr.Addr())
	if err != nil {
		return fmt.Errorf("add target %v: %w", addr, err)
	}
	ifindex, hop, err := p.routeTo(addr.Addr())
	if err == nil {
		err = p.recv.watch(ifindex)
	}
	if err != nil {
		return fmt.Errorf("add target %v: %w", addr, err)
	}
	p.sendMu.Lock()
	err = p.snd.open(addr.Addr().Is4(), !addr.Addr().Is4())
	p.sendMu.Unlock()
	if err != nil {
		return fmt.Errorf("add target %v: %w", addr, err)
	}
	h := maphash.Comparable(p.seed, addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.targets[addr]; ok {
		p.nominal += probeRate(uint64(interval)) - probeRate(t.interval)
		p.intervals.drop(t.interval)
		p.intervals.add(uint64(interval))
		t.interval = uint64(interval)
		if pa := t.path; pa.local != local || pa.ifindex != ifindex || pa.hop != hop {
			t.path = p.usePath(local, ifindex, hop) // its frame is built by the next refreshFrames
			p.dropPath(pa)
		}
		return nil
	}
	t := &target{
		addr: addr, path: p.usePath(local, ifindex, hop), interval: uint64(interval),
		base: uint32(h),
	}
	// Stagger first probes over one interval so targets added together
	// do not fire together.
	t.next = loader.Ktime() + (h>>32)%uint64(interval)
	p.targets[addr] = t
	p.nominal += probeRate(t.interval)
	p.intervals.add(t.interval)
	p.added++
	p.dueAdd(t)
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return nil
}

func (p *Prober) dueAdd(t *target) { p.due.add(t) }

// Remove stops probing addr.
func (p *Prober) Remove(addr netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.targets[addr]
	if !ok {
		return
	}
	delete(p.targets, addr)
	p.nominal = max(p.nominal-probeRate(t.interval), 0)
	p.intervals.drop(t.interval)
	if len(p.targets) == 0 {
		p.nominal = 0 // no rounding left over
	}
	p.due.remove(t)
	p.dropPath(t.path)
}

// Has reports whether addr is probed.
func (p *Prober) Has(addr netip.AddrPort) bool {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.targets[addr]
	return ok
}

// Len returns how many targets are probed.
func (p *Prober) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.targets)
}

// Targets returns the addresses probed, in no particular order.
func (p *Prober) Targets() []netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(p.targets))
	for a := range p.targets {
		out = append(out, a)
	}
	return out
}

// Snapshot returns the state of one target.
func (p *Prober) Snapshot(addr netip.AddrPort) (TargetState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.targets[addr]
	if !ok {
		return TargetState{}, false
	}
	return t.snapshot(), true
}

// SnapshotAll appends the state of every target to dst.
func (p *Prober) SnapshotAll(dst []TargetState) []TargetState {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.targets {
		dst = append(dst, t.snapshot())
	}
	return dst
}

// intervalCounts counts the targets of each interval (ns), for the
// shortest one (the send loop's grid tick divides it, tick.go): there are
// as many entries as distinct intervals, usually one.
type intervalCounts map[uint64]int

func (c *intervalCounts) add(iv uint64) {
	if *c == nil {
		*c = intervalCounts{}
	}
	(*c)[iv]++
}

func (c intervalCounts) drop(iv uint64) {
	if c[iv] <= 1 {
		delete(c, iv)
		return
	}
	c[iv]--
}

// shortest returns the shortest interval of any target, 0 with none.
func (c intervalCounts) shortest() time.Duration {
	var s uint64
	for iv := range c {
		if s == 0 || iv < s {
			s = iv
		}
	}
	return time.Duration(s)
}
