package loader

import (
	"errors"
	"net/netip"
	"testing"
)

// epKeyN is a distinct real-server key for n.
func epKeyN(n int) [rsKeySize]byte {
	return encodeRSKey(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(n >> 8), byte(n)}), 80))
}

// TestEPTable: keys go to their home bucket, then to their second one
// (the home bucket's overflow flag set while any is there), and are
// refused once both are full; every placed key is found where the
// programs look, and a removal frees its way and, last, the flag.
func TestEPTable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		buckets uint32
		keys    int
	}{
		{"one bucket", 1, 7},
		{"two buckets", 2, 14},
		{"sparse", 64, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := newEPTable(tc.buckets, 0x1234, 4)
			writes := 0
			tb.writeBucket = func(uint32, *passivePassiveEpBucket) error { writes++; return nil }
			var placed [][rsKeySize]byte
			for n := 0; len(placed) < tc.keys && n < 10000; n++ {
				k := epKeyN(n)
				err := tb.insert(k, uint32(n))
				if errors.Is(err, errEPFull) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				placed = append(placed, k)
			}
			if len(placed) < tc.keys {
				t.Fatalf("placed %d keys, want %d", len(placed), tc.keys)
			}
			check := func() {
				t.Helper()
				for _, k := range placed {
					if !epFound(tb, k) {
						t.Fatalf("key %x not where ep_find looks", k)
					}
				}
				for b := range uint32(len(tb.buckets)) {
					if (tb.spilled[b] > 0) != (tb.peek(b).Overflow != 0) {
						t.Fatalf("bucket %d: %d spilled, overflow flag %d", b, tb.spilled[b], tb.peek(b).Overflow)
					}
				}
			}
			check()
			if tc.buckets <= 2 {
				// Full: any further key is refused.
				if err := tb.insert(epKeyN(20000), 1); !errors.Is(err, errEPFull) {
					t.Errorf("insert into a full table = %v, want errEPFull", err)
				}
			}
			// Remove every other key; the rest stay findable.
			for i := 0; i < len(placed); i += 2 {
				if _, err := tb.remove(placed[i]); err != nil {
					t.Fatal(err)
				}
				if epFound(tb, placed[i]) {
					t.Fatalf("removed key %x still found", placed[i])
				}
			}
			var kept [][rsKeySize]byte
			for i := 1; i < len(placed); i += 2 {
				kept = append(kept, placed[i])
			}
			placed = kept
			check()
			for _, k := range placed {
				if _, err := tb.remove(k); err != nil {
					t.Fatal(err)
				}
			}
			placed = nil
			check()
			for b := range uint32(len(tb.buckets)) {
				if tb.peek(b) != (passivePassiveEpBucket{}) {
					t.Errorf("bucket %d not empty after every removal: %+v", b, tb.peek(b))
				}
			}
			if writes == 0 {
				t.Error("no bucket written")
			}
		})
	}
}

// epFound looks k up the way bpf/passive.c's ep_find does, in the mirror.
func epFound(tb *epTable, k [rsKeySize]byte) bool {
	fp, home, second := tb.homes(&k)
	want := tb.where[k].id
	for round, b := range [2]uint32{home, second} {
		for _, w := range tb.peek(b).Way {
			if w.Fp == fp && w.Id == want {
				return true
			}
		}
		if round == 0 && tb.peek(b).Overflow == 0 {
			return false
		}
	}
	return false
}

// TestEPTableOthers: DR and local keys get ep_keys entries, reused
// oldest first, and are refused once all are taken.
func TestEPTableOthers(t *testing.T) {
	tb := newEPTable(64, 1, 2)
	var wrote []uint32
	tb.writeKey = func(i uint32, e *passivePassiveEp) error { wrote = append(wrote, i); return nil }
	a, b, c := localKey(netip.MustParseAddr("198.18.0.1")), localKey(netip.MustParseAddr("2001:db8::1")), drKey(DRKey{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Port: 80})
	for _, k := range [][rsKeySize]byte{a, b} {
		if err := tb.insertOther(k, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.insertOther(c, 3); !errors.Is(err, errEPFull) {
		t.Fatalf("third key into 2 entries = %v, want errEPFull", err)
	}
	if err := tb.removeOther(a); err != nil {
		t.Fatal(err)
	}
	if err := tb.insertOther(c, 3); err != nil {
		t.Fatal(err)
	}
	if want := []uint32{0, 1, 0}; len(wrote) != 3 || wrote[0] != want[0] || wrote[1] != want[1] || wrote[2] != want[2] {
		t.Errorf("ep_keys entries written %v, want %v", wrote, want)
	}
	if id := tb.where[c].id; id != epOther {
		t.Errorf("DR key id %#x, want %#x (ep_keys entry 0)", id, epOther)
	}
}

// TestPassiveEndpointOverflow: real servers that share a home bucket
// beyond its ways are found by the programs in their second bucket, also
// after the keys in the home bucket are removed and put back.
func TestPassiveEndpointOverflow(t *testing.T) {
	// A small capacity: a small table (4,096 buckets), crowds easy to find.
	p := mustLoadPassive(t, PassiveOptions{NoTracepoints: true, Capacity: 16})
	// Real servers whose keys share one home bucket: more than its ways.
	byHome := map[uint32][]netip.AddrPort{}
	var crowd []netip.AddrPort
	for n := 0; n < 1<<16 && crowd == nil; n++ {
		ap := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(n >> 8), byte(n)}), 80)
		k := encodeRSKey(ap)
		_, home, _ := p.ep.homes(&k)
		byHome[home] = append(byHome[home], ap)
		if len(byHome[home]) == epWays+3 {
			crowd = byHome[home]
		}
	}
	if crowd == nil {
		t.Fatal("no crowded bucket found")
	}
	if err := p.SetRealServers(crowd); err != nil {
		t.Fatal(err)
	}
	spilled := 0
	for _, rs := range crowd {
		if p.ep.where[encodeRSKey(rs)].spill {
			spilled++
		}
	}
	if spilled < 3 {
		t.Fatalf("%d keys in their second bucket, want at least 3", spilled)
	}
	egress, _ := p.Programs()
	synAll := func(port uint16) {
		for _, rs := range crowd {
			run(t, egress, pkt{src: netip.AddrPortFrom(client4.Addr(), port), dst: rs, flags: fSYN}.build())
		}
	}
	synAll(1000)
	c, _, err := p.Counters()
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range crowd {
		if c[rs].SYNs != 1 {
			t.Errorf("%s: %d SYNs, want 1", rs, c[rs].SYNs)
		}
	}
	// Take the first ways' keys out and back: they now spill, the others
	// stay put, and every one is still found.
	if err := p.SetRealServers(crowd[epWays-2:]); err != nil {
		t.Fatal(err)
	}
	if err := p.SetRealServers(crowd); err != nil {
		t.Fatal(err)
	}
	synAll(1001)
	if c, _, err = p.Counters(); err != nil {
		t.Fatal(err)
	}
	for i, rs := range crowd {
		want := uint64(2)
		if i < epWays-2 {
			want = 1 // removed and added again: counted from zero
		}
		if c[rs].SYNs != want {
			t.Errorf("%s: %d SYNs, want %d", rs, c[rs].SYNs, want)
		}
	}
	if st, err := p.Stats(); err != nil || st.UnknownRS != 0 {
		t.Errorf("stats %+v, %v: want no unknown real server", st, err)
	}
}
