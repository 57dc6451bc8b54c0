package testnet

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// MaxResponderRanges is how many address:port ranges one [Responder]
// answers (BENCHRESP_MAX_RANGES in bpf/headers/benchresp.h).
const MaxResponderRanges = 16

// ResponderRange is one range a [Responder] answers: the IPv4 address
// Addr, ports First to Last included.
type ResponderRange struct {
	Addr        netip.Addr
	First, Last uint16
}

// ResponderStats are a [Responder]'s counters, summed over the CPUs.
type ResponderStats struct {
	SynAcks uint64 // SYNs answered with a SYN-ACK
	Dropped uint64 // other segments to a range (ACK, RST, FIN, data), dropped
	Odd     uint64 // SYNs not answered (carrying data, odd header), dropped
}

// Responder is a stateless SYN-ACK responder (bpf/benchresp.c) attached at
// TC ingress of one link: a benchmark device that stands in for many real
// servers on other machines, answering a SYN to any of its ranges without
// a socket, a process or the real TCP stack, and dropping the ACK or RST
// that follows. Its CPU is the link's receive path (softirq, or the NAPI
// thread with [RealServer.ThreadedNAPI]). Packets outside its ranges go on
// to the real stack, so real servers behind the same link keep working.
// IPv4 only.
type Responder struct {
	objs benchrespObjects
	lnk  link.Link
}

// AttachResponder loads the responder for ranges and attaches it (TCX) to
// the ingress of the link with index ifindex, in the network namespace of
// the calling thread. Close detaches it.
func AttachResponder(ifindex int, ranges []ResponderRange) (*Responder, error) {
	if len(ranges) == 0 || len(ranges) > MaxResponderRanges {
		return nil, fmt.Errorf("responder: %d ranges, want 1 to %d", len(ranges), MaxResponderRanges)
	}
	var rr [MaxResponderRanges]benchrespBenchrespRange
	for i, r := range ranges {
		if !r.Addr.Is4() || r.First > r.Last {
			return nil, fmt.Errorf("responder: range %v %d-%d: want an IPv4 address and first <= last", r.Addr, r.First, r.Last)
		}
		a := r.Addr.As4()
		rr[i] = benchrespBenchrespRange{Addr: binary.NativeEndian.Uint32(a[:]), PortLo: r.First, PortHi: r.Last}
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("responder: remove memlock limit: %w", err)
	}
	spec, err := loadBenchresp()
	if err != nil {
		return nil, fmt.Errorf("responder: load spec: %w", err)
	}
	for name, v := range map[string]any{"ranges": rr, "nranges": uint32(len(ranges)), "cookie_key": binary.NativeEndian.Uint32(key[:])} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("responder: set %s: %w", name, err)
		}
	}
	r := &Responder{}
	if err := spec.LoadAndAssign(&r.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("responder: load: %w\n%+v", err, ve)
		}
		return nil, fmt.Errorf("responder: load: %w", err)
	}
	r.lnk, err = link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: r.objs.Benchresp, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		_ = r.objs.Close()
		return nil, fmt.Errorf("responder: attach to ingress of %d: %w", ifindex, err)
	}
	return r, nil
}

// Stats reads the responder's counters.
func (r *Responder) Stats() (ResponderStats, error) {
	var s ResponderStats
	for i, dst := range []*uint64{&s.SynAcks, &s.Dropped, &s.Odd} {
		var per []uint64
		if err := r.objs.Stats.Lookup(uint32(i), &per); err != nil {
			return s, fmt.Errorf("responder: read counter %d: %w", i, err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	return s, nil
}

// Close detaches and unloads the responder.
func (r *Responder) Close() error {
	return errors.Join(r.lnk.Close(), r.objs.Close())
}

// StartResponder attaches a [Responder] for ranges to the real server's
// end of its veth (its eth0), and detaches it on cleanup. Connections to
// the ranges then succeed with nothing listening; the real server's own
// sockets on other ports keep working.
func (rs *RealServer) StartResponder(tb testing.TB, ranges ...ResponderRange) *Responder {
	tb.Helper()
	testenv.RequireRoot(tb)
	var r *Responder
	err := rs.Do(func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return fmt.Errorf("find eth0: %w", err)
		}
		r, err = AttachResponder(ifc.Index, ranges)
		return err
	})
	if errors.Is(err, ebpf.ErrNotSupported) {
		testenv.SkipOrFail(tb, fmt.Sprintf("testnet: responder on %s: %v", rs.Name, err))
	}
	if err != nil {
		tb.Fatalf("testnet: responder on %s: %v", rs.Name, err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
}
