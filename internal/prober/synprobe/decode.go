package synprobe

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Reasons a packet handed up by the receiver is not an acceptable answer;
// each is counted (label "reason" of answers_invalid_total) and ignored.
var (
	errTruncated = errors.New("truncated")
	errMalformed = errors.New("malformed")
	errChecksum  = errors.New("bad_checksum")
	errNotAnswer = errors.New("not_answer")
	errBadCookie = errors.New("bad_cookie")
	errDuplicate = errors.New("duplicate")
	errLate      = errors.New("late")
	errUnknown   = errors.New("unknown_target")
)

// answer is a decoded SYN-ACK or RST.
type answer struct {
	src, dst     netip.Addr // the server, us
	sport, dport uint16     // the server's port, our port
	seq, ack     uint32
	flags        uint8
}

// rst reports whether the answer is a reset.
func (a *answer) rst() bool { return a.flags&flagRST != 0 }

// decodeAnswer decodes an IPv4 or IPv6 packet, from its network header on,
// of which pkt holds the first bytes and wireLen is the full length. It
// checks the IPv4 header checksum and, when pkt holds the whole segment,
// the TCP checksum. A TCP checksum that equals the bare pseudo-header sum
// is accepted: that is what a sender that offloads checksumming (veth,
// CHECKSUM_PARTIAL) leaves in the field, and the kernel will verify nothing
// more on such a packet either.
func decodeAnswer(pkt []byte, wireLen int, a *answer) error {
	if len(pkt) < 1 {
		return errTruncated
	}
	var seg []byte
	var segLen int
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return errTruncated
		}
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:]))
		if ihl < 20 || total < ihl || total > wireLen {
			return errMalformed
		}
		if len(pkt) < ihl {
			return errTruncated
		}
		if fold(sum16(0, pkt[:ihl])) != 0xffff {
			return errChecksum
		}
		if pkt[9] != 6 || binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
			return errNotAnswer
		}
		a.src = netip.AddrFrom4([4]byte(pkt[12:16]))
		a.dst = netip.AddrFrom4([4]byte(pkt[16:20]))
		seg, segLen = pkt[ihl:], total-ihl
	case 6:
		if len(pkt) < 40 {
			return errTruncated
		}
		plen := int(binary.BigEndian.Uint16(pkt[4:]))
		if 40+plen > wireLen {
			return errMalformed
		}
		if pkt[6] != 6 {
			return errNotAnswer
		}
		a.src = netip.AddrFrom16([16]byte(pkt[8:24]))
		a.dst = netip.AddrFrom16([16]byte(pkt[24:40]))
		seg, segLen = pkt[40:], plen
	default:
		return errMalformed
	}
	if len(seg) < 20 {
		if segLen < 20 {
			return errMalformed
		}
		return errTruncated
	}
	off := int(seg[12]>>4) * 4
	if off < 20 || off > segLen {
		return errMalformed
	}
	if len(seg) > segLen {
		seg = seg[:segLen] // Ethernet padding
	}
	if len(seg) == segLen {
		ps := pseudoSum(a.src, a.dst, segLen)
		if fold(sum16(ps, seg)) != 0xffff && binary.BigEndian.Uint16(seg[16:]) != fold(ps) {
			return errChecksum
		}
	}
	a.sport = binary.BigEndian.Uint16(seg[0:])
	a.dport = binary.BigEndian.Uint16(seg[2:])
	a.seq = binary.BigEndian.Uint32(seg[4:])
	a.ack = binary.BigEndian.Uint32(seg[8:])
	a.flags = seg[13]
	if a.flags&flagRST == 0 && a.flags&(flagSYN|flagACK) != flagSYN|flagACK {
		return errNotAnswer
	}
	if a.flags&flagACK == 0 {
		// A RST without ACK answers no SYN of ours (RFC 9293 3.10.7.3).
		return errNotAnswer
	}
	return nil
}
