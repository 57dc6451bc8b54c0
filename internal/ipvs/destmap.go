package ipvs

import (
	"encoding/binary"
	"iter"
	"net/netip"
	"sync"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// destMap holds a service's destinations by key. A destination's address
// and port are its key, so the value keeps only the rest, compactly:
// 24 bytes instead of a Destination's 72 (two tables of 10,000
// destinations, the reconciler's and the dry-run backend's, held 5 MB;
// docs/benchmarks.md §8.9).
type destMap map[destKey]destVal

// destVal is a Destination without its key.
type destVal struct {
	Weight         int32
	UpperThreshold uint32
	LowerThreshold uint32
	method         uint8 // methodCode
	Tunnel         *config.Tunnel
}

// get returns the destination k names.
func (m destMap) get(k destKey) (Destination, bool) {
	v, ok := m[k]
	if !ok {
		return Destination{}, false
	}
	return v.dest(k), true
}

// put stores d under its key (keyOf).
func (m destMap) put(d Destination) {
	m[keyOf(d)] = destVal{
		Weight: int32(d.Weight), UpperThreshold: d.UpperThreshold, LowerThreshold: d.LowerThreshold,
		method: methodCode(d.Method), Tunnel: d.Tunnel,
	}
}

// all yields every destination, in no particular order.
func (m destMap) all() iter.Seq2[destKey, Destination] {
	return func(yield func(destKey, Destination) bool) {
		for k, v := range m {
			if !yield(k, v.dest(k)) {
				return
			}
		}
	}
}

// dest rebuilds the Destination under key k.
func (v destVal) dest(k destKey) Destination {
	return Destination{
		Addr: k.Addr, Port: k.Port, Weight: int(v.Weight), Method: methodOf8(v.method),
		Tunnel: v.Tunnel, UpperThreshold: v.UpperThreshold, LowerThreshold: v.LowerThreshold,
	}
}

// Methods as one byte: the configuration's three and "" have fixed
// codes; any other (a forwarding method lvsprobe never sets, read from
// the kernel as "fwd-N") is interned once, process-wide. There are a few
// at most (IPVS has eight forwarding codes), so the table never grows
// past a handful of entries.
var methodTab = struct {
	sync.Mutex
	names []config.Method
}{names: []config.Method{"", config.NAT, config.DR, config.TUN}}

func methodCode(m config.Method) uint8 {
	switch m {
	case "":
		return 0
	case config.NAT:
		return 1
	case config.DR:
		return 2
	case config.TUN:
		return 3
	}
	methodTab.Lock()
	defer methodTab.Unlock()
	for i, n := range methodTab.names {
		if n == m {
			return uint8(i)
		}
	}
	if len(methodTab.names) == 256 {
		panic("ipvs: more than 256 forwarding methods") // IPVS has 8
	}
	methodTab.names = append(methodTab.names, m)
	return uint8(len(methodTab.names) - 1)
}

func methodOf8(c uint8) config.Method {
	if c < 4 {
		return methodTab.names[c] // fixed: read without the lock
	}
	methodTab.Lock()
	defer methodTab.Unlock()
	return methodTab.names[c]
}

// rsAddr is a real server's address and port as a map key: 18 bytes
// without a pointer, where a netip.AddrPort takes 32 with the zone's (the
// health map of 10,000 real servers held 0.9 MB, docs/benchmarks.md §8.9).
// IPv4 addresses are taken unmapped, as the configuration holds them.
type rsAddr [18]byte

// rsAddrOf returns addr and port's key.
func rsAddrOf(addr netip.Addr, port uint16) rsAddr {
	var k rsAddr
	a := addr.As16()
	copy(k[:16], a[:])
	binary.BigEndian.PutUint16(k[16:], port)
	return k
}
