package config

import (
	"fmt"
	"net/netip"
	"strconv"
)

// ServiceKey identifies one IPVS virtual service. A virtual_server on an
// address or a fwmark owns one; a virtual_server on a group owns one per
// group member (and per address of a range).
type ServiceKey struct {
	Protocol Protocol   `json:"protocol"`
	Addr     netip.Addr `json:"address,omitzero"`
	Port     uint16     `json:"port,omitempty"`
	FWMark   uint32     `json:"fwmark,omitempty"`
	Family   string     `json:"family"` // "inet" or "inet6"
}

// String returns the service the way ipvsadm -Ln prints it:
// "TCP 198.18.0.1:80", "TCP [2001:db8::1]:80" or "FWM 7".
func (k ServiceKey) String() string {
	if k.FWMark != 0 {
		if k.Family == "inet6" {
			return "FWM " + strconv.FormatUint(uint64(k.FWMark), 10) + " IPv6"
		}
		return "FWM " + strconv.FormatUint(uint64(k.FWMark), 10)
	}
	return string(k.Protocol) + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// ID names the virtual server the way keepalived's logs do; it is unique
// within one Config and stable across reloads of the same block.
func (vs *VirtualServer) ID() string {
	if vs.id != "" {
		return vs.id
	}
	return vs.makeID()
}

// makeID builds ID; a loaded Config keeps it in vs.id, so that the keys of
// 10,000 real servers share one string instead of holding a copy each.
func (vs *VirtualServer) makeID() string {
	switch {
	case vs.Group != "":
		return "group " + vs.Group + " " + string(vs.Protocol)
	case vs.FWMark != 0:
		return fmt.Sprintf("fwmark %d %s %s", vs.FWMark, vs.Family, vs.Protocol)
	default:
		return string(vs.Protocol) + " " + netip.AddrPortFrom(vs.Addr, vs.Port).String()
	}
}

// RealServerKey identifies a real server within its virtual server: the
// value that health and IPVS state are keyed by.
type RealServerKey struct {
	VirtualServer string     `json:"virtual_server"` // VirtualServer.ID()
	Addr          netip.Addr `json:"address"`
	Port          uint16     `json:"port"`
}

// String returns "VS -> ADDR:PORT".
func (k RealServerKey) String() string {
	return k.VirtualServer + " -> " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// Key returns the identity of rs under vs.
func (rs *RealServer) Key(vs *VirtualServer) RealServerKey {
	return RealServerKey{VirtualServer: vs.ID(), Addr: rs.Addr, Port: rs.Port}
}
