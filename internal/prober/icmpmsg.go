package prober

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// ICMP echo types (RFC 792, RFC 4443).
const (
	icmpEchoReply     = 0
	icmpEchoRequest   = 8
	icmp6EchoRequest  = 128
	icmp6EchoReply    = 129
	icmpEchoHeaderLen = 8
	icmpPayloadLen    = 128 // keepalived's ICMP_BUFSIZE
)

// icmpEcho is the header of an ICMP or ICMPv6 echo message.
type icmpEcho struct {
	Type uint8
	Code uint8
	ID   uint16
	Seq  uint16
}

// errICMPShort is a datagram too short to hold what it claims.
var errICMPShort = errors.New("short ICMP packet")

// buildEchoRequest encodes an echo request with keepalived's 128-byte
// filler. The ICMPv4 checksum is filled in; for ICMPv6 the kernel computes
// it (it covers a pseudo-header the sender does not see).
func buildEchoRequest(v6 bool, id, seq uint16) []byte {
	b := make([]byte, icmpEchoHeaderLen, icmpEchoHeaderLen+icmpPayloadLen)
	b[0] = icmpEchoRequest
	if v6 {
		b[0] = icmp6EchoRequest
	}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	b = append(b, fillPattern(icmpPayloadLen)...)
	if !v6 {
		binary.BigEndian.PutUint16(b[2:], inetChecksum(b))
	}
	return b
}

// inetChecksum is the Internet checksum (RFC 1071) of b.
func inetChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// parseICMPEcho decodes the echo header of a received datagram. ipHeader
// says the datagram starts with an IPv4 header (a raw IPv4 socket); ping
// sockets and raw IPv6 sockets deliver the ICMP message alone.
func parseICMPEcho(b []byte, ipHeader bool) (icmpEcho, error) {
	if ipHeader {
		if len(b) < 20 {
			return icmpEcho{}, fmt.Errorf("%d bytes, no IPv4 header: %w", len(b), errICMPShort)
		}
		if v := b[0] >> 4; v != 4 {
			return icmpEcho{}, fmt.Errorf("IP version %d: %w", v, errICMPShort)
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return icmpEcho{}, fmt.Errorf("IPv4 header length %d of %d bytes: %w", ihl, len(b), errICMPShort)
		}
		b = b[ihl:]
	}
	if len(b) < icmpEchoHeaderLen {
		return icmpEcho{}, fmt.Errorf("%d bytes: %w", len(b), errICMPShort)
	}
	return icmpEcho{
		Type: b[0],
		Code: b[1],
		ID:   binary.BigEndian.Uint16(b[4:]),
		Seq:  binary.BigEndian.Uint16(b[6:]),
	}, nil
}

// netInterfaceIndex resolves an IPv6 zone: an interface name or index.
func netInterfaceIndex(zone string) (int, error) {
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return ifi.Index, nil
	}
	return strconv.Atoi(zone)
}
