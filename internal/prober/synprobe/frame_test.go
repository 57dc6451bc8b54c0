package synprobe

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// TestFramePut: a prebuilt frame carries the same TCP header as putSYN
// (incremental checksum included), a valid IP header and the given MACs,
// for every target sharing it (addresses and ports filled in per probe).
func TestFramePut(t *testing.T) {
	src, dst := [6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2}
	frames := map[bool]*frame{true: newFrame(7, src, dst, true), false: newFrame(7, src, dst, false)}
	tests := []struct {
		local, remote string
		rport         uint16
		proto         uint16
		ipLen         int
	}{
		{"198.18.0.1", "198.18.0.2", 8080, 0x0800, ip4Len},
		{"198.18.0.1", "198.18.255.254", 1, 0x0800, ip4Len},
		{"198.19.255.255", "198.18.7.9", 65535, 0x0800, ip4Len},
		{"2001:2::1", "2001:2::2", 8080, 0x86dd, ip6Len},
		{"2001:2::1", "2001:2:ffff:ffff:ffff:ffff:ffff:fffe", 443, 0x86dd, ip6Len},
	}
	for _, tt := range tests {
		local, remote := netip.MustParseAddr(tt.local), netip.MustParseAddr(tt.remote)
		f := frames[local.Is4()]
		for _, c := range []struct {
			lport uint16
			seq   uint32
		}{{61000, 0}, {61999, 0xffffffff}, {1, 0x12345678}, {65535, 0xfffe0001}} {
			b := make([]byte, maxFrameLen)
			n := f.put(b, local, remote, c.lport, tt.rport, c.seq)
			if n != ethLen+tt.ipLen+synLen {
				t.Fatalf("%s: length %d", tt.remote, n)
			}
			if !bytes.Equal(b[0:6], dst[:]) || !bytes.Equal(b[6:12], src[:]) || binary.BigEndian.Uint16(b[12:]) != tt.proto {
				t.Errorf("%s: ethernet header % x", tt.remote, b[:14])
			}
			want := make([]byte, synLen)
			putSYN(want, local, remote, c.lport, tt.rport, c.seq)
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
			} else if binary.BigEndian.Uint16(ip[4:]) != synLen || netip.AddrFrom16([16]byte(ip[8:24])) != local || netip.AddrFrom16([16]byte(ip[24:40])) != remote {
				t.Errorf("%s: ipv6 header % x", tt.remote, ip)
			}
		}
	}
}

// BenchmarkFramePut is the packet-socket sender's work per probe to fill
// a frame: IPv4, targets spread over 10,000 addresses and ports.
func BenchmarkFramePut(b *testing.B) {
	f := newFrame(7, [6]byte{2, 0, 0, 0, 0, 1}, [6]byte{2, 0, 0, 0, 0, 2}, true)
	local := netip.MustParseAddr("198.18.0.1")
	remotes := make([]netip.Addr, 10000)
	for i := range remotes {
		remotes[i] = netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
	}
	buf := make([]byte, maxFrameLen)
	for i := 0; b.Loop(); i++ {
		j := i % len(remotes)
		f.put(buf, local, remotes[j], uint16(61000+j%1000), uint16(1+j), uint32(i)*2654435761)
	}
}
