//go:build linux

package ipvs

import (
	"net"
	"testing"

	mobyipvs "github.com/moby/ipvs"
	"github.com/vishvananda/netlink/nl"
)

// FuzzKernelRecords decodes arbitrary kernel service and destination
// records and checks that encoding the result and decoding it again is
// stable (what the reconciler compares is what it would write).
func FuzzKernelRecords(f *testing.F) {
	f.Add(uint16(2), uint16(6), []byte{198, 18, 0, 1}, uint16(80), uint32(0), "wlc", uint32(3), uint32(300), uint32(0x00ffffff), []byte{198, 18, 1, 1}, uint32(2), 5)
	f.Add(uint16(10), uint16(0), []byte{}, uint16(0), uint32(7), "sh", uint32(0x18), uint32(0), uint32(64), []byte{0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, uint32(3), 0)
	f.Fuzz(func(t *testing.T, af, proto uint16, addr []byte, port uint16, mark uint32, sched string, flags, timeout, mask uint32, daddr []byte, fwd uint32, weight int) {
		s1 := fromMobyService(&mobyipvs.Service{AddressFamily: af, Protocol: proto, Address: net.IP(addr), Port: port, FWMark: mark, SchedName: sched, Flags: flags, Timeout: timeout, Netmask: mask})
		m, err := toMobyService(s1)
		if err != nil {
			return // not something lvsprobe would write (unknown protocol, no address)
		}
		s2 := fromMobyService(m)
		if serviceID(s1.ServiceKey) != serviceID(s2.ServiceKey) || !sameService(s1, s2) {
			t.Fatalf("service not stable:\n%+v\n%+v", s1, s2)
		}
		reply := nl.NewRtAttr(ipvsCmdAttrDest, nil)
		reply.AddRtAttr(ipvsDestAttrAddr, daddr)
		reply.AddRtAttr(ipvsDestAttrPort, nl.BEUint16Attr(port))
		reply.AddRtAttr(ipvsDestAttrWeight, nl.Uint32Attr(uint32(weight)))
		reply.AddRtAttr(ipvsDestAttrFwdMethod, nl.Uint32Attr(fwd))
		d1, err := decodeDest(reply.Serialize(), s1.Family)
		if err != nil {
			return
		}
		md, err := destAttr(d1)
		if err != nil {
			return
		}
		d2, err := decodeDest(md.Serialize(), s1.Family)
		if err != nil || keyOf(d1) != keyOf(d2) || !sameDestination(d1, d2) {
			t.Fatalf("destination not stable:\n%+v\n%+v", d1, d2)
		}
	})
}
