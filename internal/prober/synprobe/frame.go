package synprobe

import (
	"encoding/binary"
	"net/netip"
)

// Sizes of the headers a prebuilt frame holds.
const (
	ethLen      = 14
	ip4Len      = 20
	ip6Len      = 40
	maxFrameLen = ethLen + ip6Len + synLen
)

// frame is the probe template of one path, prebuilt down to the Ethernet
// header, for the packet-socket sender: every target whose probes leave
// through the same interface to the same next hop, in the same address
// family, shares one (refreshFrames). Per probe the addresses, the ports,
// the sequence number and both checksums are filled in from the probe,
// from partial sums kept here. It is immutable once built; a changed path
// (neighbour, route) gets a new frame. (A frame of each target's own was
// 128 bytes a target: 1.2 MB at 10,000.)
type frame struct {
	ifindex int
	proto   uint16            // EtherType, host order
	hdr     [maxFrameLen]byte // the frame with addresses, ports, sequence and checksums zero
	n       int               // its length
	tcp     int               // offset of the TCP header
	ipSum   uint32            // IPv4: partial checksum of the IP header without the addresses
	sum     uint32            // partial checksum of the pseudo-header and TCP header without addresses and ports
	src     [6]byte           // our MAC address
	dst     [6]byte           // the next hop's MAC address
}

// newFrame builds the frame template of probes of an address family (is4:
// IPv4) that leave through ifindex from MAC src to MAC dst.
func newFrame(ifindex int, src, dst [6]byte, is4 bool) *frame {
	f := &frame{ifindex: ifindex, src: src, dst: dst}
	b := f.hdr[:]
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	var zero netip.Addr
	if is4 {
		f.proto = 0x0800
		f.tcp = ethLen + ip4Len
		ip := b[ethLen:f.tcp]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], ip4Len+synLen)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // don't fragment
		ip[8] = 64
		ip[9] = 6 // TCP
		f.ipSum = sum16(0, ip)
		zero = netip.IPv4Unspecified()
	} else {
		f.proto = 0x86dd
		f.tcp = ethLen + ip6Len
		ip := b[ethLen:f.tcp]
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], synLen)
		ip[6] = 6 // TCP
		ip[7] = 64
		zero = netip.IPv6Unspecified()
	}
	binary.BigEndian.PutUint16(b[12:], f.proto)
	f.n = f.tcp + synLen
	tcp := b[f.tcp:f.n]
	putSYN(tcp, zero, zero, 0, 0, 0)
	binary.BigEndian.PutUint16(tcp[16:], 0)
	f.sum = sum16(pseudoSum(zero, zero, synLen), tcp)
	return f
}

// put writes the probe from local:lport to remote:rport with sequence seq
// into b (len(b) >= maxFrameLen) and returns its length. local and remote
// are of the frame's address family.
func (f *frame) put(b []byte, local, remote netip.Addr, lport, rport uint16, seq uint32) int {
	copy(b, f.hdr[:f.n])
	var as uint32 // the addresses' partial sum: in the IPv4 header and the pseudo-header
	if f.proto == 0x0800 {
		ip := b[ethLen:f.tcp]
		l, r := local.As4(), remote.As4()
		lw, rw := binary.BigEndian.Uint32(l[:]), binary.BigEndian.Uint32(r[:])
		binary.BigEndian.PutUint32(ip[12:], lw)
		binary.BigEndian.PutUint32(ip[16:], rw)
		as = lw>>16 + lw&0xffff + rw>>16 + rw&0xffff
		binary.BigEndian.PutUint16(ip[10:], ^fold(f.ipSum+as))
	} else {
		ip := b[ethLen:f.tcp]
		l, r := local.As16(), remote.As16()
		copy(ip[8:24], l[:])
		copy(ip[24:40], r[:])
		as = sum64(l) + sum64(r)
	}
	tcp := b[f.tcp:f.n]
	binary.BigEndian.PutUint16(tcp[0:], lport)
	binary.BigEndian.PutUint16(tcp[2:], rport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	s := f.sum + as + uint32(lport) + uint32(rport) + seq>>16 + seq&0xffff
	binary.BigEndian.PutUint16(tcp[16:], ^fold(s))
	return f.n
}

// sum64 is the one's-complement partial sum of a's 16-bit words, not
// folded beyond 32 bits.
func sum64(a [16]byte) uint32 {
	var s uint64
	for _, w := range [...]uint64{binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])} {
		s += w>>48 + w>>32&0xffff + w>>16&0xffff + w&0xffff
	}
	return uint32(s)
}
