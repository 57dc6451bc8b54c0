package synprobe

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// The reference vectors of the SipHash paper (appendix A) and its
// reference implementation: key 00..0f, message 00..(n-1).
func TestSipHash24Vectors(t *testing.T) {
	var key [16]byte
	for i := range key {
		key[i] = byte(i)
	}
	k0, k1 := binary.LittleEndian.Uint64(key[:8]), binary.LittleEndian.Uint64(key[8:])
	tests := []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{15, 0xa129ca6149be45e5},
	}
	for _, tt := range tests {
		msg := make([]byte, tt.n)
		for i := range msg {
			msg[i] = byte(i)
		}
		if got := sipHash24(k0, k1, msg); got != tt.want {
			t.Errorf("len %d: got %#x, want %#x", tt.n, got, tt.want)
		}
	}
}

func TestCookieRotation(t *testing.T) {
	c, err := newCookies()
	if err != nil {
		t.Fatal(err)
	}
	l, r := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.1.2")
	s0 := c.seq(l, r, 40000, 80)
	tests := []struct {
		name string
		ack  uint32
		port uint16
		want bool
	}{
		{"ack = seq+1", s0 + 1, 80, true},
		{"ack = seq", s0, 80, false},
		{"ack = seq+2", s0 + 2, 80, false},
		{"other port", s0 + 1, 81, false},
	}
	for _, tt := range tests {
		if got := c.valid(l, r, 40000, tt.port, tt.ack); got != tt.want {
			t.Errorf("%s: valid = %v, want %v", tt.name, got, tt.want)
		}
	}
	if err := c.rotate(); err != nil {
		t.Fatal(err)
	}
	if !c.valid(l, r, 40000, 80, s0+1) {
		t.Error("answer under the previous key rejected after one rotation")
	}
	if c.seq(l, r, 40000, 80) == s0 {
		t.Error("rotation kept the sequence number (1 in 2^32 chance)")
	}
	if err := c.rotate(); err != nil {
		t.Fatal(err)
	}
	if c.valid(l, r, 40000, 80, s0+1) {
		t.Error("answer under a key two rotations old accepted")
	}
}
