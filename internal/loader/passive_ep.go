package loader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// The kinds of endpoint-table keys other than a real server's (struct
// passive_rs_key's proto; see bpf/headers/passive.h).
const (
	epKindDR    = 0xfe // an LVS-DR real server: MAC and port
	epKindLocal = 0xff // one of the director's own addresses
	epWays      = 7
	epOther     = 0x80000000 // an entry id naming an ep_keys index, not a slot
)

// errEPFull says that a key's two buckets, or the ep_keys entries, are
// all taken.
var errEPFull = errors.New("endpoint table full")

// epTable is the Go side of the programs' endpoint table (bpf/passive.c's
// endpoints and ep_keys, described in bpf/headers/passive.h): it keeps a
// copy of every bucket, places keys and writes the buckets it changed. A
// key goes to its home bucket or, when that is full, to its second bucket
// (the home bucket's overflow flag then tells the programs to look
// there); no key is ever moved, so a program never misses a key that is
// in the table while Go changes another. Guarded by Passive.mu.
type epTable struct {
	seed     uint64
	mask     uint32
	buckets  []*passivePassiveEpBucket // by index; nil while the bucket has never held a key
	spilled  []int32                   // by home bucket: its keys placed in their second bucket
	where    map[[rsKeySize]byte]epPlace
	free     []uint32 // ep_keys indexes freed, reused oldest first
	next     uint32   // the next never-used ep_keys index
	capacity uint32   // ep_keys entries

	// writeBucket and writeKey store a bucket and an ep_keys entry in the
	// kernel (nil: nowhere, for tests).
	writeBucket func(i uint32, b *passivePassiveEpBucket) error
	writeKey    func(i uint32, e *passivePassiveEp) error
}

// epPlace is where a key sits.
type epPlace struct {
	bucket uint32
	way    uint8
	spill  bool // in its second bucket
	id     uint32
}

// epBuckets is the number of buckets for n keys: a power of two with room
// for four times as many keys as n, so that a full home bucket (and a key
// refused for want of room in both of its buckets) stays rare.
func epBuckets(n int) uint32 {
	b := uint32(1)
	for int(b)*epWays < 4*n {
		b <<= 1
	}
	return b
}

// newEPTable returns an empty table of the given number of buckets (a
// power of two) with room for others DR and local keys.
func newEPTable(buckets uint32, seed uint64, others uint32) *epTable {
	return &epTable{
		seed:     seed,
		mask:     buckets - 1,
		buckets:  make([]*passivePassiveEpBucket, buckets),
		spilled:  make([]int32, buckets),
		where:    map[[rsKeySize]byte]epPlace{},
		capacity: others,
	}
}

// useMaps makes t write to the loaded maps.
func (t *epTable) useMaps(endpoints, keys *ebpf.Map) {
	t.writeBucket = func(i uint32, b *passivePassiveEpBucket) error { return endpoints.Put(i, b) }
	t.writeKey = func(i uint32, e *passivePassiveEp) error { return keys.Put(i, e) }
}

// hash is bpf/passive.c's ep_hash of a key.
func (t *epTable) hash(k *[rsKeySize]byte) uint64 {
	a := binary.NativeEndian.Uint64(k[0:8])
	b := binary.NativeEndian.Uint64(k[8:16])
	c := uint64(binary.NativeEndian.Uint32(k[16:20]))
	h := (a^t.seed)*0x9e3779b97f4a7c15 ^ b*0xc2b2ae3d27d4eb4f ^ (c^t.seed>>32)*0x165667b19e3779f9
	h ^= h >> 32
	h *= 0xd6e8feb86659fd93
	return h ^ h>>32
}

// localBits is bpf/passive.c's local_filter for the director's addresses
// keys (see PASSIVE_LOCAL_BITS in bpf/headers/passive.h).
func (t *epTable) localBits(keys ...map[[rsKeySize]byte]bool) (bits [passiveLocalBits / 64]uint64) {
	for _, m := range keys {
		for k := range m {
			i := t.hash(&k) >> 48 % passiveLocalBits
			bits[i/64] |= 1 << (i % 64)
		}
	}
	return bits
}

// passiveLocalBits is PASSIVE_LOCAL_BITS.
const passiveLocalBits = 512

// homes returns a key's fingerprint and its two buckets, as ep_find
// computes them.
func (t *epTable) homes(k *[rsKeySize]byte) (fp, home, second uint32) {
	h := t.hash(k)
	fp = uint32(h>>32) | 1
	home = uint32(h) & t.mask
	second = uint32(h>>16) & t.mask
	if second == home {
		second = (home + 1) & t.mask
	}
	return fp, home, second
}

// bucket returns Go's copy of bucket i, made empty on first use. Only
// the buckets that ever held a key (or an overflow flag) are kept: a
// table sized for 16,384 real servers has 32,768 buckets of 64 bytes,
// 2 MB, most of them empty (docs/benchmarks.md §8.9); the kernel's map
// starts zeroed, so an absent bucket is an empty one.
func (t *epTable) bucket(i uint32) *passivePassiveEpBucket {
	b := t.buckets[i]
	if b == nil {
		b = new(passivePassiveEpBucket)
		t.buckets[i] = b
	}
	return b
}

// peek returns bucket i's contents without making it.
func (t *epTable) peek(i uint32) passivePassiveEpBucket {
	if b := t.buckets[i]; b != nil {
		return *b
	}
	return passivePassiveEpBucket{}
}

func (t *epTable) write(i uint32) error {
	if t.writeBucket == nil {
		return nil
	}
	if err := t.writeBucket(i, t.bucket(i)); err != nil {
		return fmt.Errorf("write endpoint bucket %d: %w", i, err)
	}
	return nil
}

// has reports whether k is in the table.
func (t *epTable) has(k [rsKeySize]byte) bool {
	_, ok := t.where[k]
	return ok
}

// insert places k with entry id: a real server's slot, or epOther | an
// ep_keys index. It returns errEPFull when both of k's buckets are full.
func (t *epTable) insert(k [rsKeySize]byte, id uint32) error {
	if _, ok := t.where[k]; ok {
		return fmt.Errorf("endpoint key %x already placed", k)
	}
	fp, home, second := t.homes(&k)
	for _, b := range [2]uint32{home, second} {
		bk := t.bucket(b)
		for w := range bk.Way {
			if bk.Way[w].Fp != 0 {
				continue
			}
			bk.Way[w].Fp, bk.Way[w].Id = fp, id
			if err := t.write(b); err != nil {
				bk.Way[w].Fp, bk.Way[w].Id = 0, 0
				return err
			}
			spill := b != home
			t.where[k] = epPlace{bucket: b, way: uint8(w), spill: spill, id: id}
			if spill {
				t.spilled[home]++
				if t.bucket(home).Overflow == 0 {
					t.bucket(home).Overflow = 1
					return t.write(home)
				}
			}
			return nil
		}
	}
	return errEPFull
}

// remove takes k out of the table and returns its entry id.
func (t *epTable) remove(k [rsKeySize]byte) (uint32, error) {
	pl, ok := t.where[k]
	if !ok {
		return 0, nil
	}
	delete(t.where, k)
	bk := t.bucket(pl.bucket)
	bk.Way[pl.way].Fp, bk.Way[pl.way].Id = 0, 0
	err := t.write(pl.bucket)
	if pl.spill {
		_, home, _ := t.homes(&k)
		t.spilled[home]--
		if t.spilled[home] == 0 {
			t.bucket(home).Overflow = 0
			err = errors.Join(err, t.write(home))
		}
	}
	return pl.id, err
}

// insertOther places a DR or local key k, naming the real server's slot
// (0 for a local key), in an ep_keys entry of its own.
func (t *epTable) insertOther(k [rsKeySize]byte, slot uint32) error {
	var i uint32
	switch {
	case len(t.free) > 0:
		i = t.free[0]
		t.free = t.free[1:]
	case t.next < t.capacity:
		i = t.next
		t.next++
	default:
		return errEPFull
	}
	e := passivePassiveEp{Key: rsKeyStruct(k), Slot: slot}
	var err error
	if t.writeKey != nil {
		err = t.writeKey(i, &e)
	}
	if err == nil {
		err = t.insert(k, epOther|i)
	}
	if err != nil {
		t.free = append(t.free, i)
	}
	return err
}

// removeOther takes a DR or local key out and frees its ep_keys entry
// (reused last: a program that read the old bucket finds the old key).
func (t *epTable) removeOther(k [rsKeySize]byte) error {
	if !t.has(k) {
		return nil
	}
	id, err := t.remove(k)
	if id&epOther != 0 {
		t.free = append(t.free, id&^epOther)
	}
	return err
}

// rsKeyStruct is the generated struct passive_rs_key of a key's bytes.
func rsKeyStruct(k [rsKeySize]byte) passivePassiveRsKey {
	return passivePassiveRsKey{
		Addr:   [16]uint8(k[:16]),
		Port:   binary.NativeEndian.Uint16(k[16:]),
		Proto:  k[18],
		Family: k[19],
	}
}

// localKey is the endpoint key of one of the director's addresses.
func localKey(a netip.Addr) (k [rsKeySize]byte) {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		copy(k[:], b[:])
		k[19] = 4
	} else {
		b := a.As16()
		copy(k[:], b[:])
		k[19] = 6
	}
	k[18] = epKindLocal
	return k
}

// drKey is the endpoint key of an LVS-DR real server's link-layer address
// and port.
func drKey(d DRKey) (k [rsKeySize]byte) {
	copy(k[:], d.MAC[:])
	binary.BigEndian.PutUint16(k[16:], d.Port)
	k[18] = epKindDR
	return k
}
