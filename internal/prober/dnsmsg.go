package prober

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// DNS wire constants used by DNS_CHECK (RFC 1035).
const (
	dnsHeaderLen = 12
	dnsClassIN   = 1
	dnsFlagQR    = 1 << 15
	dnsFlagRD    = 1 << 8
	dnsMaxQuery  = 768 // keepalived's DNS_BUFFER_SIZE: the query buffer
	dnsMaxReply  = 768 // and the reply buffer
)

// dnsTypeCodes are the query types keepalived 2.2.7's DNS_CHECK knows.
var dnsTypeCodes = map[string]uint16{
	"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "RRSIG": 46, "DNSKEY": 48,
}

// errDNSName is a DNS_CHECK name that cannot be encoded.
var errDNSName = errors.New("invalid DNS name")

// buildDNSQuery encodes keepalived's query: header with the given id and
// RD set, one question for name (labels split at dots; "" and "." are the
// root; a trailing dot is allowed), qtype, class IN.
func buildDNSQuery(id uint16, name string, qtype uint16) ([]byte, error) {
	b := make([]byte, dnsHeaderLen, dnsHeaderLen+len(name)+6)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], dnsFlagRD)
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT
	if name != "." && name != "" {
		for _, l := range strings.Split(strings.TrimSuffix(name, "."), ".") {
			if l == "" || len(l) > 63 {
				return nil, fmt.Errorf("%q: label %q: %w", name, l, errDNSName)
			}
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	b = append(b, 0)
	b = binary.BigEndian.AppendUint16(b, qtype)
	b = binary.BigEndian.AppendUint16(b, dnsClassIN)
	if len(b) > dnsMaxQuery {
		return nil, fmt.Errorf("%q: query of %d bytes: %w", name, len(b), errDNSName)
	}
	return b, nil
}

// dnsVerdict is what one datagram says to DNS_CHECK.
type dnsVerdict int

const (
	dnsIgnore dnsVerdict = iota // not the answer: too short, another id, or a query
	dnsOK                       // the answer, RCODE 0
	dnsFail                     // the answer, with an error RCODE
)

// parseDNSReply judges a datagram as keepalived's dns_recv_thread does:
// only the header counts (id, QR, RCODE); the rest of the message is not
// read. It returns the RCODE for dnsFail.
func parseDNSReply(b []byte, id uint16) (dnsVerdict, int) {
	if len(b) < dnsHeaderLen {
		return dnsIgnore, 0
	}
	if binary.BigEndian.Uint16(b[0:]) != id {
		return dnsIgnore, 0
	}
	flags := binary.BigEndian.Uint16(b[2:])
	if flags&dnsFlagQR == 0 {
		return dnsIgnore, 0
	}
	if rc := int(flags & 0xf); rc != 0 {
		return dnsFail, rc
	}
	return dnsOK, 0
}
