package synprobe

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// TestFramePut: a prebuilt frame carries the same TCP header as putSYN
// (incremental checksum included), a valid IP header and the given MACs.
func TestFramePut(t *testing.T) {
	src, dst := [6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2}
	tests := []struct {
		local, remote string
		proto         uint16
		ipLen         int
	}{
		{"198.18.0.1", "198.18.0.2", 0x0800, ip4Len},
		{"2001:2::1", "2001:2::2", 0x86dd, ip6Len},
	}
	for _, tt := range tests {
		local, remote := netip.MustParseAddr(tt.local), netip.MustParseAddr(tt.remote)
		f := newFrame(7, src, dst, local, remote, 8080)
		for _, c := range []struct {
			lport uint16
			seq   uint32
		}{{61000, 0}, {61999, 0xffffffff}, {1, 0x12345678}, {65535, 0xfffe0001}} {
			b := make([]byte, maxFrameLen)
			n := f.put(b, c.lport, c.seq)
			if n != ethLen+tt.ipLen+synLen {
				t.Fatalf("%s: length %d", tt.remote, n)
			}
			if !bytes.Equal(b[0:6], dst[:]) || !bytes.Equal(b[6:12], src[:]) || binary.BigEndian.Uint16(b[12:]) != tt.proto {
				t.Errorf("%s: ethernet header % x", tt.remote, b[:14])
			}
			want := make([]byte, synLen)
			putSYN(want, local, remote, c.lport, 8080, c.seq)
			if got := b[ethLen+tt.ipLen : n]; !bytes.Equal(got, want) {
				t.Errorf("%s %+v: tcp\n got % x\nwant % x", tt.remote, c, got, want)
			}
			ip := b[ethLen : ethLen+tt.ipLen]
			if tt.proto == 0x0800 {
				if fold(sum16(0, ip)) != 0xffff || binary.BigEndian.Uint16(ip[2:]) != ip4Len+synLen {
					t.Errorf("%s: ip header % x", tt.remote, ip)
				}
				if netip.AddrFrom4([4]byte(ip[12:16])) != local || netip.AddrFrom4([4]byte(ip[16:20])) != remote {
					t.Errorf("%s: ip addresses % x", tt.remote, ip)
				}
			} else if binary.BigEndian.Uint16(ip[4:]) != synLen || netip.AddrFrom16([16]byte(ip[24:40])) != remote {
				t.Errorf("%s: ipv6 header % x", tt.remote, ip)
			}
		}
	}
}
