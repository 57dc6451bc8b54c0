package prober

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestBuildDNSQuery(t *testing.T) {
	hdr := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	tests := []struct {
		name  string
		qtype uint16
		want  []byte // after the header
	}{
		{".", 6, []byte{0, 0, 6, 0, 1}},
		{"", 6, []byte{0, 0, 6, 0, 1}},
		{"example.com", 1, []byte{7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1}},
		{"example.com.", 28, []byte{7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 28, 0, 1}},
	}
	for _, tt := range tests {
		got, err := buildDNSQuery(0x1234, tt.name, tt.qtype)
		if err != nil {
			t.Fatalf("%q: %v", tt.name, err)
		}
		if want := append(append([]byte{}, hdr...), tt.want...); !bytes.Equal(got, want) {
			t.Errorf("%q: got % x, want % x", tt.name, got, want)
		}
	}
	for _, bad := range []string{"a..b", string(bytes.Repeat([]byte{'a'}, 64)) + ".com"} {
		if _, err := buildDNSQuery(1, bad, 1); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestParseDNSReply(t *testing.T) {
	msg := func(id, flags uint16) []byte {
		b := make([]byte, 12)
		binary.BigEndian.PutUint16(b, id)
		binary.BigEndian.PutUint16(b[2:], flags)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want dnsVerdict
		rc   int
	}{
		{"noerror", msg(7, 0x8180), dnsOK, 0},
		{"servfail", msg(7, 0x8182), dnsFail, 2},
		{"nxdomain", msg(7, 0x8183), dnsFail, 3},
		{"refused", msg(7, 0x8005), dnsFail, 5},
		{"other id", msg(8, 0x8180), dnsIgnore, 0},
		{"query", msg(7, 0x0100), dnsIgnore, 0},
		{"short", msg(7, 0x8180)[:11], dnsIgnore, 0},
	}
	for _, tt := range tests {
		v, rc := parseDNSReply(tt.b, 7)
		if v != tt.want || rc != tt.rc {
			t.Errorf("%s: got %v rc %d, want %v rc %d", tt.name, v, rc, tt.want, tt.rc)
		}
	}
}

func FuzzParseDNSReply(f *testing.F) {
	f.Add([]byte{0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0}, uint16(7))
	f.Add([]byte{0, 7, 0x81, 0x83}, uint16(7))
	f.Fuzz(func(t *testing.T, b []byte, id uint16) {
		v, rc := parseDNSReply(b, id)
		switch v {
		case dnsOK:
			if rc != 0 || len(b) < 12 || b[2]&0x80 == 0 || b[3]&0xf != 0 {
				t.Fatalf("OK for % x", b)
			}
		case dnsFail:
			if rc < 1 || rc > 15 || len(b) < 12 {
				t.Fatalf("fail rc %d for % x", rc, b)
			}
		}
	})
}

func FuzzBuildDNSQuery(f *testing.F) {
	f.Add("example.com", uint16(6))
	f.Add(".", uint16(1))
	f.Fuzz(func(t *testing.T, name string, qtype uint16) {
		q, err := buildDNSQuery(9, name, qtype)
		if err != nil {
			return
		}
		if len(q) > dnsMaxQuery || binary.BigEndian.Uint16(q[len(q)-4:]) != qtype {
			t.Fatalf("query % x for %q", q, name)
		}
		if v, _ := parseDNSReply(q, 9); v != dnsIgnore {
			t.Fatalf("own query read as an answer")
		}
	})
}
