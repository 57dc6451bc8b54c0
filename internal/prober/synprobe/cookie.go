package synprobe

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"
)

// secret is one SipHash key.
type secret struct{ k0, k1 uint64 }

// secrets are the current key and the one before it: an answer to a probe
// sent just before a rotation still validates.
type secrets struct{ cur, prev secret }

// cookies computes and checks the sequence numbers of probes: the keyed
// hash of the probe's 4-tuple, so that an answer proves it answers a probe
// we sent (its ack is our sequence number + 1) without per-probe state.
// It is safe for concurrent use.
type cookies struct{ keys atomic.Pointer[secrets] }

func newSecret() (secret, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return secret{}, fmt.Errorf("read random secret: %w", err)
	}
	return secret{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}, nil
}

func newCookies() (*cookies, error) {
	s, err := newSecret()
	if err != nil {
		return nil, err
	}
	c := &cookies{}
	c.keys.Store(&secrets{cur: s, prev: s})
	return c, nil
}

// rotate makes a fresh key current and keeps the current one as previous.
func (c *cookies) rotate() error {
	s, err := newSecret()
	if err != nil {
		return err
	}
	old := c.keys.Load()
	c.keys.Store(&secrets{cur: s, prev: old.cur})
	return nil
}

// tupleHash hashes the probe's 4-tuple (our address and port, the
// target's address and port) under key s.
func tupleHash(s secret, local, remote netip.Addr, lport, rport uint16) uint32 {
	var m [36]byte
	a, b := local.As16(), remote.As16()
	copy(m[0:16], a[:])
	copy(m[16:32], b[:])
	binary.BigEndian.PutUint16(m[32:], lport)
	binary.BigEndian.PutUint16(m[34:], rport)
	return uint32(sipHash24(s.k0, s.k1, m[:]))
}

// seq returns the sequence number for a probe on this 4-tuple.
func (c *cookies) seq(local, remote netip.Addr, lport, rport uint16) uint32 {
	return tupleHash(c.keys.Load().cur, local, remote, lport, rport)
}

// valid reports whether ack acknowledges a probe we sent on this 4-tuple
// under the current or the previous key.
func (c *cookies) valid(local, remote netip.Addr, lport, rport uint16, ack uint32) bool {
	k := c.keys.Load()
	want := ack - 1
	if tupleHash(k.cur, local, remote, lport, rport) == want {
		return true
	}
	return k.prev != k.cur && tupleHash(k.prev, local, remote, lport, rport) == want
}
