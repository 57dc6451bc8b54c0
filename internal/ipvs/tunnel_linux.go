//go:build linux

package ipvs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// IPVS generic-netlink numbers (include/uapi/linux/ip_vs.h) of the
// destination requests Kernel makes itself.
const (
	ipvsCmdNewDest = 5 // IPVS_CMD_NEW_DEST
	ipvsCmdSetDest = 6 // IPVS_CMD_SET_DEST
	ipvsCmdDelDest = 7 // IPVS_CMD_DEL_DEST
	ipvsCmdGetDest = 8 // IPVS_CMD_GET_DEST

	ipvsCmdAttrService = 1 // IPVS_CMD_ATTR_SERVICE
	ipvsCmdAttrDest    = 2 // IPVS_CMD_ATTR_DEST

	ipvsSvcAttrAF       = 1 // IPVS_SVC_ATTR_AF, u16
	ipvsSvcAttrProtocol = 2 // IPVS_SVC_ATTR_PROTOCOL, u16
	ipvsSvcAttrAddr     = 3 // IPVS_SVC_ATTR_ADDR
	ipvsSvcAttrPort     = 4 // IPVS_SVC_ATTR_PORT, be16
	ipvsSvcAttrFWMark   = 5 // IPVS_SVC_ATTR_FWMARK, u32

	ipvsDestAttrAddr       = 1  // IPVS_DEST_ATTR_ADDR
	ipvsDestAttrPort       = 2  // IPVS_DEST_ATTR_PORT, be16
	ipvsDestAttrFwdMethod  = 3  // IPVS_DEST_ATTR_FWD_METHOD, u32
	ipvsDestAttrWeight     = 4  // IPVS_DEST_ATTR_WEIGHT, u32
	ipvsDestAttrUThresh    = 5  // IPVS_DEST_ATTR_U_THRESH, u32
	ipvsDestAttrLThresh    = 6  // IPVS_DEST_ATTR_L_THRESH, u32
	ipvsDestAttrAddrFamily = 11 // IPVS_DEST_ATTR_ADDR_FAMILY, u16
	ipvsDestAttrTunType    = 13 // IPVS_DEST_ATTR_TUN_TYPE, u8
	ipvsDestAttrTunPort    = 14 // IPVS_DEST_ATTR_TUN_PORT, be16
	ipvsDestAttrTunFlags   = 15 // IPVS_DEST_ATTR_TUN_FLAGS, u16
)

// nlaTypeMask strips the nested and byte-order flags from an attribute
// type (NLA_TYPE_MASK).
const nlaTypeMask = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)

// tunTypes maps tunnel types to IP_VS_CONN_F_TUNNEL_TYPE_*.
var tunTypes = map[string]uint8{"ipip": 0, "gue": 1, "gre": 2}

// tunChecksums maps checksum options to IP_VS_TUNNEL_ENCAP_FLAG_*.
var tunChecksums = map[string]uint16{"nocsum": 0, "csum": 1, "remcsum": 2}

// tunnelNumbers returns the kernel's encoding of t (nil is plain ipip).
func tunnelNumbers(t *config.Tunnel) (typ uint8, port, flags uint16, err error) {
	if t == nil {
		return 0, 0, 0, nil
	}
	typ, ok := tunTypes[t.Type]
	if !ok {
		return 0, 0, 0, fmt.Errorf("tunnel type %q: %w", t.Type, ErrUnsupported)
	}
	flags, ok = tunChecksums[t.Checksum]
	if !ok {
		return 0, 0, 0, fmt.Errorf("tunnel checksum %q: %w", t.Checksum, ErrUnsupported)
	}
	return typ, t.Port, flags, nil
}

// tunnelFromNumbers decodes tunnelNumbers. Values lvsprobe never writes
// come back as names no configuration uses, so they get corrected.
func tunnelFromNumbers(typ uint8, port, flags uint16) *config.Tunnel {
	t := &config.Tunnel{Type: "tun-type-" + strconv.Itoa(int(typ)), Port: port, Checksum: "tun-flags-" + strconv.Itoa(int(flags))}
	for name, n := range tunTypes {
		if n == typ {
			t.Type = name
		}
	}
	for name, n := range tunChecksums {
		if n == flags {
			t.Checksum = name
		}
	}
	return t
}

// serviceKeyAttr returns the IPVS_CMD_ATTR_SERVICE attribute that names k.
func serviceKeyAttr(k config.ServiceKey) (*nl.RtAttr, error) {
	m, err := toMobyKey(k)
	if err != nil {
		return nil, err
	}
	a := nl.NewRtAttr(ipvsCmdAttrService, nil)
	a.AddRtAttr(ipvsSvcAttrAF, nl.Uint16Attr(m.AddressFamily))
	if m.FWMark != 0 {
		a.AddRtAttr(ipvsSvcAttrFWMark, nl.Uint32Attr(m.FWMark))
		return a, nil
	}
	a.AddRtAttr(ipvsSvcAttrProtocol, nl.Uint16Attr(m.Protocol))
	a.AddRtAttr(ipvsSvcAttrAddr, ipBytes(m.Address))
	a.AddRtAttr(ipvsSvcAttrPort, nl.BEUint16Attr(m.Port))
	return a, nil
}

// destAttr returns the IPVS_CMD_ATTR_DEST attribute for d with every
// setting, the tunnel attributes included (plain ipip, port 0 and nocsum
// when d has no tunnel options, as the kernel defaults them).
func destAttr(d Destination) (*nl.RtAttr, error) {
	m := d.Method
	if m == "" {
		m = config.NAT
	}
	fwd, ok := methodFlags[m]
	if !ok {
		return nil, fmt.Errorf("destination %s: method %q: %w", addrPort(d.Addr, d.Port), d.Method, ErrUnsupported)
	}
	typ, port, flags, err := tunnelNumbers(tunnelOf(m, d.Tunnel))
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", addrPort(d.Addr, d.Port), err)
	}
	addr := d.Addr.Unmap()
	if !addr.IsValid() {
		return nil, fmt.Errorf("destination without an address: %w", ErrUnsupported)
	}
	af := uint16(unix.AF_INET)
	if addr.Is6() {
		af = unix.AF_INET6
	}
	a := nl.NewRtAttr(ipvsCmdAttrDest, nil)
	a.AddRtAttr(ipvsDestAttrAddr, addr.AsSlice())
	a.AddRtAttr(ipvsDestAttrPort, nl.BEUint16Attr(d.Port))
	a.AddRtAttr(ipvsDestAttrFwdMethod, nl.Uint32Attr(fwd))
	a.AddRtAttr(ipvsDestAttrWeight, nl.Uint32Attr(uint32(d.Weight)))
	a.AddRtAttr(ipvsDestAttrUThresh, nl.Uint32Attr(d.UpperThreshold))
	a.AddRtAttr(ipvsDestAttrLThresh, nl.Uint32Attr(d.LowerThreshold))
	a.AddRtAttr(ipvsDestAttrAddrFamily, nl.Uint16Attr(af))
	a.AddRtAttr(ipvsDestAttrTunType, nl.Uint8Attr(typ))
	a.AddRtAttr(ipvsDestAttrTunPort, nl.BEUint16Attr(port))
	a.AddRtAttr(ipvsDestAttrTunFlags, nl.Uint16Attr(flags))
	return a, nil
}

// ipBytes returns ip as 4 bytes when it is IPv4, else as 16.
func ipBytes(ip []byte) []byte {
	if a, ok := netip.AddrFromSlice(ip); ok && a.Unmap().Is4() {
		b := a.Unmap().As4()
		return b[:]
	}
	return ip
}

// nlAttr is one netlink attribute: its type without flags and its value.
type nlAttr struct {
	typ uint16
	val []byte
}

// parseAttrs splits b into netlink attributes, refusing lengths that
// overrun b (nl.ParseRouteAttr panics on those).
func parseAttrs(b []byte) ([]nlAttr, error) {
	var out []nlAttr
	for len(b) >= unix.SizeofNlAttr {
		n := int(binary.NativeEndian.Uint16(b))
		if n < unix.SizeofNlAttr || n > len(b) {
			return nil, fmt.Errorf("netlink attribute of length %d in %d bytes: %w", n, len(b), errShortAttr)
		}
		out = append(out, nlAttr{typ: binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask, val: b[unix.SizeofNlAttr:n]})
		b = b[min(len(b), (n+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1)):]
	}
	return out, nil
}

// destAttrSizes holds the least length of the destination attributes
// decodeDestAttrs reads as numbers.
var destAttrSizes = map[uint16]int{
	ipvsDestAttrPort: 2, ipvsDestAttrFwdMethod: 4, ipvsDestAttrWeight: 4, ipvsDestAttrUThresh: 4, ipvsDestAttrLThresh: 4,
	ipvsDestAttrAddrFamily: 2, ipvsDestAttrTunType: 1, ipvsDestAttrTunPort: 2, ipvsDestAttrTunFlags: 2,
}

// errShortAttr means a kernel attribute is shorter than its type.
var errShortAttr = errors.New("attribute too short")

// decodeDest decodes one IPVS_CMD_GET_DEST reply (the attributes after
// the generic-netlink header) into a Destination, its tunnel options as
// tunnelOf normalises them (nil unless a TUN destination has options
// other than plain ipip). family is the service's, used when the reply
// names no address family.
func decodeDest(b []byte, family string) (Destination, error) {
	top, err := parseAttrs(b)
	if err != nil {
		return Destination{}, fmt.Errorf("parse ipvs reply: %w", err)
	}
	for _, t := range top {
		if t.typ == ipvsCmdAttrDest {
			return decodeDestAttrs(t.val, family)
		}
	}
	return Destination{}, fmt.Errorf("ipvs reply without a destination: %w", errShortAttr)
}

func decodeDestAttrs(b []byte, family string) (Destination, error) {
	attrs, err := parseAttrs(b)
	if err != nil {
		return Destination{}, fmt.Errorf("parse ipvs destination: %w", err)
	}
	var (
		d              Destination
		addr           []byte
		af             = familyNumber(family)
		fwd            uint32
		typ            uint8
		tunPort, flags uint16
		sawAddr        bool
	)
	for _, a := range attrs {
		v := a.val
		if len(v) < destAttrSizes[a.typ] {
			return Destination{}, fmt.Errorf("ipvs destination attribute %d: %w", a.typ, errShortAttr)
		}
		switch a.typ {
		case ipvsDestAttrAddr:
			addr, sawAddr = v, true
		case ipvsDestAttrPort:
			d.Port = binary.BigEndian.Uint16(v)
		case ipvsDestAttrFwdMethod:
			fwd = binary.NativeEndian.Uint32(v)
		case ipvsDestAttrWeight:
			d.Weight = int(binary.NativeEndian.Uint32(v))
		case ipvsDestAttrUThresh:
			d.UpperThreshold = binary.NativeEndian.Uint32(v)
		case ipvsDestAttrLThresh:
			d.LowerThreshold = binary.NativeEndian.Uint32(v)
		case ipvsDestAttrAddrFamily:
			af = binary.NativeEndian.Uint16(v)
		case ipvsDestAttrTunType:
			typ = v[0]
		case ipvsDestAttrTunPort:
			tunPort = binary.BigEndian.Uint16(v)
		case ipvsDestAttrTunFlags:
			flags = binary.NativeEndian.Uint16(v)
		}
	}
	switch {
	case !sawAddr:
		return Destination{}, fmt.Errorf("ipvs destination without an address: %w", errShortAttr)
	case af == unix.AF_INET6 && len(addr) >= 16:
		d.Addr = netip.AddrFrom16([16]byte(addr[:16])).Unmap()
	case af != unix.AF_INET6 && len(addr) >= 4:
		d.Addr = netip.AddrFrom4([4]byte(addr[:4]))
	default:
		return Destination{}, fmt.Errorf("ipvs destination address of %d bytes: %w", len(addr), errShortAttr)
	}
	d.Method = methodOf(fwd)
	d.Tunnel = tunnelOf(d.Method, tunnelFromNumbers(typ, tunPort, flags))
	return d, nil
}
