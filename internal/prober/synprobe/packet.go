package synprobe

import (
	"encoding/binary"
	"net/netip"
)

// TCP flag bits.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagACK = 0x10
)

// synLen is the length of the TCP header of a probe: 20 bytes plus an MSS
// option, so that the probe looks like an ordinary SYN to middleboxes.
const synLen = 24

// putSYN writes a probe's TCP header into b (len(b) >= synLen) and returns
// synLen. The checksum covers the pseudo-header of local and remote.
func putSYN(b []byte, local, remote netip.Addr, lport, rport uint16, seq uint32) int {
	b = b[:synLen]
	binary.BigEndian.PutUint16(b[0:], lport)
	binary.BigEndian.PutUint16(b[2:], rport)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], 0)
	b[12] = (synLen / 4) << 4
	b[13] = flagSYN
	binary.BigEndian.PutUint16(b[14:], 64240) // window
	binary.BigEndian.PutUint16(b[16:], 0)     // checksum, below
	binary.BigEndian.PutUint16(b[18:], 0)     // urgent pointer
	b[20], b[21] = 2, 4                       // MSS option
	binary.BigEndian.PutUint16(b[22:], 1460)
	binary.BigEndian.PutUint16(b[16:], tcpChecksum(local, remote, b))
	return synLen
}

// sum16 adds b as big-endian 16-bit words to s (one's-complement partial).
func sum16(s uint32, b []byte) uint32 {
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// fold folds a partial sum to 16 bits without complementing it.
func fold(s uint32) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// pseudoSum is the partial sum of the TCP pseudo-header.
func pseudoSum(src, dst netip.Addr, length int) uint32 {
	var s uint32
	if src.Is4() {
		a, b := src.As4(), dst.As4()
		s = sum16(sum16(0, a[:]), b[:])
	} else {
		a, b := src.As16(), dst.As16()
		s = sum16(sum16(0, a[:]), b[:])
		s += uint32(length >> 16)
	}
	return s + 6 + uint32(length&0xffff)
}

// tcpChecksum is the checksum to put in a TCP segment (whose checksum
// field is zero) sent from src to dst.
func tcpChecksum(src, dst netip.Addr, seg []byte) uint16 {
	return ^fold(sum16(pseudoSum(src, dst, len(seg)), seg))
}
