package loader

import "net/netip"

// rsHome is bpf/passive.c's rs_home: the home slot, below slots, of a
// real server whose endpoint hash is h. The programs look a real server
// up at its home slot first (one cache line, the first of its counters)
// and only then in the endpoint table.
func rsHome(h uint64, slots uint32) int32 {
	return int32((h >> 32) * uint64(slots) >> 32)
}

// addHome gives ap (encoded as k) slot i, its home slot, when i is below
// limit and free, and reports whether it did. A slot freed by this round
// of [Passive.SetRealServers] is not taken (see add: a program that found
// the removed real server a moment ago would count into its successor).
func (s *rsSlots) addHome(k [rsKeySize]byte, ap netip.AddrPort, i int32, limit int) bool {
	if i < 0 || int(i) >= limit {
		return false
	}
	if s.byKey == nil {
		s.byKey = map[[rsKeySize]byte]int32{}
	}
	if _, ok := s.byKey[k]; ok {
		return false
	}
	if int(i) < len(s.ap) {
		if s.gen[i] != 0 || s.freed[i] == s.round {
			return false
		}
		// i stays in s.free; add skips it while it is taken.
	} else {
		for j := int32(len(s.ap)); j <= i; j++ {
			s.grow()
			if j != i {
				s.free = append(s.free, j)
			}
		}
	}
	s.assign(k, ap, i)
	return true
}

// grow adds one never-used slot at the end.
func (s *rsSlots) grow() {
	s.ap, s.label, s.gen = append(s.ap, netip.AddrPort{}), append(s.label, ""), append(s.gen, 0)
	s.freed = append(s.freed, 0)
}

// assign makes slot i ap's (encoded as k), with a new generation.
func (s *rsSlots) assign(k [rsKeySize]byte, ap netip.AddrPort, i int32) {
	s.gens++
	if s.gens == 0 {
		s.gens++
	}
	s.ap[i], s.label[i], s.gen[i] = ap, ap.String(), s.gens
	s.byKey[k] = i
}
