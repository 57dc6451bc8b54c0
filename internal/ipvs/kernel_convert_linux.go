//go:build linux

package ipvs

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	mobyipvs "github.com/moby/ipvs"
	"golang.org/x/sys/unix"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// protoNumbers maps transport protocols to their IP protocol numbers.
var protoNumbers = map[config.Protocol]uint16{
	config.TCP:  unix.IPPROTO_TCP,
	config.UDP:  unix.IPPROTO_UDP,
	config.SCTP: unix.IPPROTO_SCTP,
}

// methodFlags maps forwarding methods to IPVS connection flags.
var methodFlags = map[config.Method]uint32{
	config.NAT: mobyipvs.ConnFwdMasq,
	config.DR:  mobyipvs.ConnFwdDirectRoute,
	config.TUN: mobyipvs.ConnFwdTunnel,
}

func familyNumber(family string) uint16 {
	if family == familyInet6 {
		return unix.AF_INET6
	}
	return unix.AF_INET
}

// netmaskNumber encodes a persistence netmask as the IPVS netlink
// attribute carries it: an IPv4 mask in network byte order read as a
// native-endian u32, an IPv6 mask as its prefix length.
func netmaskNumber(family string, mask netip.Addr) uint32 {
	if !mask.IsValid() {
		mask = fullMask(family)
	}
	if family == familyInet6 {
		return uint32(maskBits(mask))
	}
	if !mask.Unmap().Is4() {
		mask = fullMask(familyInet)
	}
	b := mask.Unmap().As4()
	return binary.NativeEndian.Uint32(b[:])
}

// netmaskAddr decodes netmaskNumber.
func netmaskAddr(family string, n uint32) netip.Addr {
	if family == familyInet6 {
		var b [16]byte
		for i := 0; i < int(min(n, 128)); i++ {
			b[i/8] |= 0x80 >> (i % 8)
		}
		return netip.AddrFrom16(b)
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], n)
	return netip.AddrFrom4(b)
}

// toMobyKey returns the moby/ipvs service that names k (the only fields
// the kernel reads to find a service).
func toMobyKey(k config.ServiceKey) (*mobyipvs.Service, error) {
	id := serviceID(k)
	m := &mobyipvs.Service{AddressFamily: familyNumber(id.Family)}
	if id.FWMark != 0 {
		m.FWMark = id.FWMark
		return m, nil
	}
	p, ok := protoNumbers[k.Protocol]
	if !ok {
		return nil, fmt.Errorf("service %s: protocol %q: %w", k, k.Protocol, ErrUnsupported)
	}
	if !id.Addr.IsValid() {
		return nil, fmt.Errorf("service %s: no address: %w", k, ErrUnsupported)
	}
	m.Protocol = p
	m.Address = net.IP(id.Addr.AsSlice())
	m.Port = k.Port
	return m, nil
}

// toMobyService returns s as moby/ipvs spells it.
func toMobyService(s Service) (*mobyipvs.Service, error) {
	m, err := toMobyKey(s.ServiceKey)
	if err != nil {
		return nil, err
	}
	fam := serviceID(s.ServiceKey).Family
	m.SchedName = s.Scheduler
	m.Flags = flagBits(s.Flags)
	m.Timeout = s.Timeout
	m.Netmask = netmaskNumber(fam, s.Netmask)
	m.PEName = s.PEName
	return m, nil
}

// fromMobyService returns the Service a kernel record describes.
func fromMobyService(m *mobyipvs.Service) Service {
	fam := familyInet
	if m.AddressFamily == unix.AF_INET6 {
		fam = familyInet6
	}
	k := config.ServiceKey{Family: fam}
	if m.FWMark != 0 {
		k.FWMark = m.FWMark
	} else {
		k.Protocol = config.Protocol("proto-" + strconv.Itoa(int(m.Protocol)))
		for p, n := range protoNumbers {
			if n == m.Protocol {
				k.Protocol = p
			}
		}
		if a, ok := netip.AddrFromSlice(m.Address); ok {
			k.Addr = a.Unmap()
		}
		k.Port = m.Port
	}
	k = serviceID(k) // the family follows the address, as everywhere else
	return Service{
		ServiceKey: k,
		Scheduler:  m.SchedName,
		Flags:      flagList(m.Flags &^ flagHashed),
		Timeout:    m.Timeout,
		Netmask:    netmaskAddr(k.Family, m.Netmask),
		PEName:     m.PEName,
	}
}

// methodOf returns the Method of the IPVS forwarding flags fwd. Methods
// lvsprobe never sets (local node, bypass) come back as a Method that
// matches no configured one, so they get corrected.
func methodOf(fwd uint32) config.Method {
	fwd &= mobyipvs.ConnFwdMask
	for meth, fl := range methodFlags {
		if fl == fwd {
			return meth
		}
	}
	return config.Method("fwd-" + strconv.Itoa(int(fwd)))
}
