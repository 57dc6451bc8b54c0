package ipvs

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Address families of a ServiceKey.
const (
	familyInet  = "inet"
	familyInet6 = "inet6"
)

// serviceID returns k in the one form used as a map key: a fwmark service
// is its mark and family (the kernel reports no protocol or address for
// it); any other service is protocol, address and port, with the family
// taken from the address.
func serviceID(k config.ServiceKey) config.ServiceKey {
	if k.FWMark != 0 {
		fam := familyInet
		if k.Family == familyInet6 {
			fam = familyInet6
		}
		return config.ServiceKey{FWMark: k.FWMark, Family: fam}
	}
	k.Addr = k.Addr.Unmap()
	k.Family = familyInet
	if k.Addr.Is6() {
		k.Family = familyInet6
	}
	return k
}

// destKey identifies a destination within a service.
type destKey struct {
	Addr netip.Addr
	Port uint16
}

func keyOf(d Destination) destKey { return destKey{Addr: d.Addr.Unmap(), Port: d.Port} }

// fullMask returns the persistence netmask keepalived sends when no
// granularity is configured: 255.255.255.255, or /128 for IPv6.
func fullMask(family string) netip.Addr {
	if family == familyInet6 {
		return netip.AddrFrom16([16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	return netip.AddrFrom4([4]byte{0xff, 0xff, 0xff, 0xff})
}

// sameService reports whether a and b have the same settings (the key is
// not compared). A zero netmask stands for the full mask.
func sameService(a, b Service) bool {
	fam := serviceID(a.ServiceKey).Family
	ma, mb := a.Netmask, b.Netmask
	if !ma.IsValid() {
		ma = fullMask(fam)
	}
	if !mb.IsValid() {
		mb = fullMask(fam)
	}
	return a.Scheduler == b.Scheduler &&
		flagBits(a.Flags) == flagBits(b.Flags) &&
		a.Timeout == b.Timeout &&
		ma.Unmap() == mb.Unmap() &&
		a.PEName == b.PEName
}

// tunnelOf returns t with keepalived's defaults made explicit, or nil for
// the default tunnel (ipip, no checksum options), so that nil and an
// explicit default compare equal.
func tunnelOf(m config.Method, t *config.Tunnel) *config.Tunnel {
	if m != config.TUN || t == nil {
		return nil
	}
	n := *t
	if n.Type == "" {
		n.Type = "ipip"
	}
	if n.Checksum == "" {
		n.Checksum = "nocsum"
	}
	if n.Type == "ipip" && n.Checksum == "nocsum" && n.Port == 0 {
		return nil
	}
	return &n
}

// sameDestination reports whether a and b have the same settings (the
// address and port are not compared).
func sameDestination(a, b Destination) bool {
	ta, tb := tunnelOf(a.Method, a.Tunnel), tunnelOf(b.Method, b.Tunnel)
	if (ta == nil) != (tb == nil) || (ta != nil && *ta != *tb) {
		return false
	}
	return a.Weight == b.Weight && a.Method == b.Method &&
		a.UpperThreshold == b.UpperThreshold && a.LowerThreshold == b.LowerThreshold
}

// sortedServiceIDs returns the keys of m in a stable order (for
// deterministic operation order and output).
func sortedServiceIDs[V any](m map[config.ServiceKey]V) []config.ServiceKey {
	keys := make([]config.ServiceKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareServiceKeys)
	return keys
}

func compareServiceKeys(a, b config.ServiceKey) int {
	if a.FWMark != b.FWMark {
		return cmp.Compare(a.FWMark, b.FWMark)
	}
	if a.Family != b.Family {
		return cmp.Compare(a.Family, b.Family)
	}
	if a.Protocol != b.Protocol {
		return cmp.Compare(a.Protocol, b.Protocol)
	}
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

func compareDestKeys(a, b destKey) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}
