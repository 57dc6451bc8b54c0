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

// frame is a target's probe prebuilt down to the Ethernet header, for the
// packet-socket sender: per probe only the source port, the sequence
// number and the TCP checksum change. It is immutable once built; a
// changed path (neighbour, route) gets a new frame.
type frame struct {
	ifindex int
	proto   uint16            // EtherType, host order
	hdr     [maxFrameLen]byte // the frame with source port, sequence and checksum zero
	n       int               // its length
	tcp     int               // offset of the TCP header
	sum     uint32            // partial checksum of the pseudo-header and the template's TCP header
	src     [6]byte           // our MAC address
	dst     [6]byte           // the next hop's MAC address
}

// newFrame builds the frame of probes from local to remote:rport that
// leave through ifindex from MAC src to MAC dst.
func newFrame(ifindex int, src, dst [6]byte, local, remote netip.Addr, rport uint16) *frame {
	f := &frame{ifindex: ifindex, src: src, dst: dst}
	b := f.hdr[:]
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	if remote.Is4() {
		f.proto = 0x0800
		f.tcp = ethLen + ip4Len
		ip := b[ethLen:f.tcp]
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], ip4Len+synLen)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // don't fragment
		ip[8] = 64
		ip[9] = 6 // TCP
		l, r := local.As4(), remote.As4()
		copy(ip[12:16], l[:])
		copy(ip[16:20], r[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(0, ip)))
	} else {
		f.proto = 0x86dd
		f.tcp = ethLen + ip6Len
		ip := b[ethLen:f.tcp]
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], synLen)
		ip[6] = 6 // TCP
		ip[7] = 64
		l, r := local.As16(), remote.As16()
		copy(ip[8:24], l[:])
		copy(ip[24:40], r[:])
	}
	binary.BigEndian.PutUint16(b[12:], f.proto)
	f.n = f.tcp + synLen
	tcp := b[f.tcp:f.n]
	putSYN(tcp, local, remote, 0, rport, 0)
	binary.BigEndian.PutUint16(tcp[16:], 0)
	f.sum = sum16(pseudoSum(local, remote, synLen), tcp)
	return f
}

// put writes the probe with source port lport and sequence seq into b
// (len(b) >= maxFrameLen) and returns its length.
func (f *frame) put(b []byte, lport uint16, seq uint32) int {
	copy(b, f.hdr[:f.n])
	tcp := b[f.tcp:f.n]
	binary.BigEndian.PutUint16(tcp[0:], lport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	s := f.sum + uint32(lport) + seq>>16 + seq&0xffff
	binary.BigEndian.PutUint16(tcp[16:], ^fold(s))
	return f.n
}
