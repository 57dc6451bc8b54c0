package ipvs

import (
	"slices"
	"strings"
)

// Service flag bits as the kernel defines them (include/uapi/linux/ip_vs.h).
const (
	flagPersistent uint32 = 0x0001 // IP_VS_SVC_F_PERSISTENT
	flagHashed     uint32 = 0x0002 // IP_VS_SVC_F_HASHED: kernel-internal, never compared
	flagOnePacket  uint32 = 0x0004 // IP_VS_SVC_F_ONEPACKET
	flagSched1     uint32 = 0x0008 // IP_VS_SVC_F_SCHED1
	flagSched2     uint32 = 0x0010 // IP_VS_SVC_F_SCHED2
	flagSched3     uint32 = 0x0020 // IP_VS_SVC_F_SCHED3
)

// flagNames maps every canonical flag name to its bit, in bit order.
var flagNames = []struct {
	name string
	bit  uint32
}{
	{"persistent", flagPersistent},
	{"ops", flagOnePacket},
	{"flag-1", flagSched1},
	{"flag-2", flagSched2},
	{"flag-3", flagSched3},
}

// flagAliases are the scheduler-specific names ipvsadm and keepalived
// accept for the generic scheduler flags.
var flagAliases = map[string]string{
	"sh-fallback": "flag-1",
	"sh-port":     "flag-2",
	"mh-fallback": "flag-1",
	"mh-port":     "flag-2",
}

// flagBits returns the kernel bits of flags; unknown names are ignored.
func flagBits(flags []string) uint32 {
	var bits uint32
	for _, f := range flags {
		f = strings.ToLower(f)
		if a, ok := flagAliases[f]; ok {
			f = a
		}
		for _, n := range flagNames {
			if n.name == f {
				bits |= n.bit
			}
		}
	}
	return bits
}

// flagList returns the canonical names of bits, in bit order; bits
// without a name (HASHED and anything newer) are dropped.
func flagList(bits uint32) []string {
	var out []string
	for _, n := range flagNames {
		if bits&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// canonicalFlags returns flags with aliases resolved, duplicates and
// unknown names dropped, in bit order.
func canonicalFlags(flags []string) []string { return flagList(flagBits(flags)) }

// schedFlagList returns the scheduler flags of bits (flag-1..3) for
// ipvsadm's -b option, or nil.
func schedFlagList(bits uint32) []string {
	return slices.DeleteFunc(flagList(bits), func(s string) bool { return s == "persistent" || s == "ops" })
}
