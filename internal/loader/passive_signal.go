package loader

import (
	"encoding/binary"
	"math"
	"net/netip"
	"time"
)

// LatencyBuckets is the number of buckets of a [Histogram]: bucket i
// counts handshakes that took [2^i, 2^(i+1)) microseconds (bucket 0 also
// those under 1 µs, the last also everything longer).
const LatencyBuckets = 28

// Histogram is a log2 histogram of handshake latencies (see
// [LatencyBuckets]).
type Histogram [LatencyBuckets]uint64

// BucketUpper returns the upper bound of bucket i.
func BucketUpper(i int) time.Duration {
	return time.Duration(uint64(1)<<(i+1)) * time.Microsecond
}

// Count returns the number of latencies in h.
func (h *Histogram) Count() uint64 {
	var n uint64
	for _, v := range h {
		n += v
	}
	return n
}

// Quantile returns an estimate of the q-quantile (0 <= q <= 1): the upper
// bound of the bucket it falls in, so at most twice the true value. It
// returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.Count()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, v := range h {
		seen += v
		if seen >= rank {
			return BucketUpper(i)
		}
	}
	return BucketUpper(LatencyBuckets - 1)
}

// sub returns h - o, bucket by bucket (0 where a counter went back).
func (h *Histogram) sub(o *Histogram) Histogram {
	var d Histogram
	for i := range h {
		d[i] = minus(h[i], o[i])
	}
	return d
}

// minus is a-b for counters, 0 when a counter was reset below b.
func minus(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

// ClientCounters is what the TC programs saw of client traffic to one
// real server on the real-server-facing links (cumulative, or a
// difference in a [Delta]).
type ClientCounters struct {
	SYNs           uint64        // client SYNs forwarded to the real server
	SYNRetransmits uint64        // of those, the same 4-tuple's SYN again: an unanswered handshake
	SYNACKs        uint64        // SYN-ACKs from the real server (NAT only: DR/TUN replies bypass the director)
	Resets         uint64        // RSTs from the real server
	Refused        uint64        // of those, RSTs answering a SYN
	Latency        Histogram     // first SYN to SYN-ACK, handshakes without retransmission only, of the timed sample ([PassiveOptions.HandshakeSample])
	LatencySum     time.Duration // total of the latencies in Latency
}

// OwnCounters is what the tracepoints saw of the director's own TCP
// connections to one real server (the checks, a local proxy).
type OwnCounters struct {
	Connects       uint64        // connects started (SYN_SENT)
	Established    uint64        // SYN_SENT -> ESTABLISHED
	Failed         uint64        // SYN_SENT -> CLOSE: refused, timed out or given up
	Refused        uint64        // RST received in SYN_SENT
	Resets         uint64        // RST received on an established connection
	Retransmits    uint64        // segments retransmitted
	SYNRetransmits uint64        // of those, SYNs
	Latency        Histogram     // SYN_SENT to ESTABLISHED
	LatencySum     time.Duration // total of the latencies in Latency
}

func (c ClientCounters) sub(o ClientCounters) ClientCounters {
	return ClientCounters{
		SYNs: minus(c.SYNs, o.SYNs), SYNRetransmits: minus(c.SYNRetransmits, o.SYNRetransmits),
		SYNACKs: minus(c.SYNACKs, o.SYNACKs), Resets: minus(c.Resets, o.Resets), Refused: minus(c.Refused, o.Refused),
		Latency: c.Latency.sub(&o.Latency), LatencySum: time.Duration(minus(uint64(c.LatencySum), uint64(o.LatencySum))),
	}
}

func (c OwnCounters) sub(o OwnCounters) OwnCounters {
	return OwnCounters{
		Connects: minus(c.Connects, o.Connects), Established: minus(c.Established, o.Established),
		Failed: minus(c.Failed, o.Failed), Refused: minus(c.Refused, o.Refused), Resets: minus(c.Resets, o.Resets),
		Retransmits: minus(c.Retransmits, o.Retransmits), SYNRetransmits: minus(c.SYNRetransmits, o.SYNRetransmits),
		Latency: c.Latency.sub(&o.Latency), LatencySum: time.Duration(minus(uint64(c.LatencySum), uint64(o.LatencySum))),
	}
}

func (c ClientCounters) zero() bool { return c.SYNs == 0 && c.SYNACKs == 0 && c.Resets == 0 }
func (c OwnCounters) zero() bool {
	return c.Connects == 0 && c.Established == 0 && c.Failed == 0 && c.Resets == 0 && c.Retransmits == 0 && c.Refused == 0
}

// Delta is what changed for one real server over one polling interval of
// [Passive.Run]: the failure detector's passive input. Only real servers
// with some change get a Delta.
type Delta struct {
	RealServer netip.AddrPort // the real server's address and port, as configured
	Interval   time.Duration  // the time the counters cover
	Clients    ClientCounters // client traffic seen on the links (TC)
	Own        OwnCounters    // the director's own connections (tracepoints)
}

// ResetRate returns the real server's RSTs per second, clients' and own.
func (d Delta) ResetRate() float64 {
	if d.Interval <= 0 {
		return 0
	}
	return float64(d.Clients.Resets+d.Own.Refused+d.Own.Resets) / d.Interval.Seconds()
}

// UnansweredRatio returns the share of client SYNs that were
// retransmissions (0 to 1): near 0 for a healthy real server, rising as
// handshakes go unanswered. It is the signal that works in DR and TUN,
// where replies bypass the director.
func (d Delta) UnansweredRatio() float64 {
	if d.Clients.SYNs == 0 {
		return 0
	}
	return float64(d.Clients.SYNRetransmits) / float64(d.Clients.SYNs)
}

// HandshakeQuantile returns the q-quantile of the client handshake
// latency in the interval (0 when none was timed; at most 2x high, see
// [Histogram.Quantile]).
func (d Delta) HandshakeQuantile(q float64) time.Duration { return d.Clients.Latency.Quantile(q) }

// EventKind says what an [Event] reports.
type EventKind uint32

// Kinds of [Event].
const (
	EventReset         EventKind = 1 // a RST from the real server crossed a link
	EventSYNRetransmit EventKind = 2 // a client SYN to the real server was retransmitted
	EventOwnReset      EventKind = 3 // the director's own connection was refused or reset
	// EventRefused: a RST from the real server answered a client's SYN
	// (nothing listens on its port). It is sent for the first such RST
	// of an event gap even when an [EventReset] started the gap, and
	// instead of that [EventReset] when the refusal started it.
	EventRefused EventKind = 4
)

// String names the kind for logs and metrics.
func (k EventKind) String() string {
	switch k {
	case EventReset:
		return "reset"
	case EventSYNRetransmit:
		return "syn_retransmit"
	case EventOwnReset:
		return "own_reset"
	case EventRefused:
		return "refused"
	}
	return "unknown"
}

// Event is sent at once, through a ring buffer, for the first RST (or SYN
// retransmission, or own reset) of a real server after a quiet gap
// ([PassiveOptions.EventGap]), and for the first refused client SYN
// within that gap ([EventRefused]); the counters in the next [Delta]
// carry the rest.
type Event struct {
	RealServer netip.AddrPort
	Kind       EventKind
	KtimeNs    uint64 // CLOCK_MONOTONIC when the packet crossed the hook (see [Ktime])
}

// eventSize is the size of struct passive_event.
const eventSize = 8 + rsKeySize + 8

// rsKeySize is the size of struct passive_rs_key.
const rsKeySize = 20

// decodeEvent decodes one ring-buffer record of struct passive_event.
func decodeEvent(raw []byte, e *Event) bool {
	if len(raw) < eventSize {
		return false
	}
	ap, ok := decodeRSKey(raw[8 : 8+rsKeySize])
	if !ok {
		return false
	}
	e.KtimeNs = binary.NativeEndian.Uint64(raw)
	e.RealServer = ap
	e.Kind = EventKind(binary.NativeEndian.Uint32(raw[8+rsKeySize:]))
	return true
}

// decodeRSKey decodes struct passive_rs_key: 16 address bytes, the port in
// network order, proto, family.
func decodeRSKey(b []byte) (netip.AddrPort, bool) {
	if len(b) < rsKeySize {
		return netip.AddrPort{}, false
	}
	port := binary.BigEndian.Uint16(b[16:])
	switch b[19] {
	case 4:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[:4])), port), true
	case 6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[:16])), port), true
	}
	return netip.AddrPort{}, false
}

// encodeRSKey is the inverse of decodeRSKey for a TCP real server.
func encodeRSKey(ap netip.AddrPort) (k [rsKeySize]byte) {
	a := ap.Addr().Unmap()
	if a.Is4() {
		b := a.As4()
		copy(k[:], b[:])
		k[19] = 4
	} else {
		b := a.As16()
		copy(k[:], b[:])
		k[19] = 6
	}
	binary.BigEndian.PutUint16(k[16:], ap.Port())
	k[18] = 6 // IPPROTO_TCP
	return k
}
