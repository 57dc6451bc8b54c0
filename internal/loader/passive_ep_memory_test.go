package loader

import (
	"encoding/binary"
	"testing"
)

// TestEPTableSparse: Go's copy of the endpoint table keeps only the
// buckets keys went to (the whole table cost 2 MB at the default
// capacity, docs/benchmarks.md §8.9), and a key is still found.
func TestEPTableSparse(t *testing.T) {
	const buckets, keys = 1 << 15, 1000
	tb := newEPTable(buckets, 7, 4)
	var ks [][rsKeySize]byte
	for i := range keys {
		var k [rsKeySize]byte
		binary.BigEndian.PutUint32(k[:], 0xc6120000+uint32(i))
		k[18], k[19] = 6, 4
		if err := tb.insert(k, uint32(i)); err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	made := 0
	for _, b := range tb.buckets {
		if b != nil {
			made++
		}
	}
	if made == 0 || made > 2*keys {
		t.Errorf("%d keys made %d of %d buckets, want at most %d", keys, made, buckets, 2*keys)
	}
	for _, k := range ks {
		if !epFound(tb, k) {
			t.Fatalf("key %x not found", k)
		}
	}
}
