package prober

import (
	"encoding/binary"
	"testing"
)

func TestEchoRequest(t *testing.T) {
	b := buildEchoRequest(false, 0x1234, 7)
	if len(b) != 8+128 || b[0] != icmpEchoRequest || inetChecksum(b) != 0 {
		t.Fatalf("v4 request: len %d type %d checksum over all %#x", len(b), b[0], inetChecksum(b))
	}
	if string(b[8:27]) != "keepalived check - " {
		t.Fatalf("payload %q", b[8:27])
	}
	e, err := parseICMPEcho(b, false)
	if err != nil || e.ID != 0x1234 || e.Seq != 7 {
		t.Fatalf("parse own request: %+v %v", e, err)
	}
	if b6 := buildEchoRequest(true, 1, 2); b6[0] != icmp6EchoRequest || b6[2] != 0 || b6[3] != 0 {
		t.Fatalf("v6 request header % x", b6[:8])
	}
}

func TestParseICMPEcho(t *testing.T) {
	reply := []byte{0, 0, 0, 0, 0x12, 0x34, 0, 9}
	ip := make([]byte, 24) // IHL 6: with options
	ip[0] = 0x46
	tests := []struct {
		name     string
		b        []byte
		ipHeader bool
		ok       bool
		want     icmpEcho
	}{
		{"ping socket", reply, false, true, icmpEcho{ID: 0x1234, Seq: 9}},
		{"raw v4 with options", append(ip, reply...), true, true, icmpEcho{ID: 0x1234, Seq: 9}},
		{"short", reply[:7], false, false, icmpEcho{}},
		{"IP header only", ip, true, false, icmpEcho{}},
		{"not IPv4", append([]byte{0x65}, make([]byte, 30)...), true, false, icmpEcho{}},
		{"IHL too small", append([]byte{0x44}, make([]byte, 30)...), true, false, icmpEcho{}},
	}
	for _, tt := range tests {
		e, err := parseICMPEcho(tt.b, tt.ipHeader)
		if (err == nil) != tt.ok || e != tt.want {
			t.Errorf("%s: got %+v, %v", tt.name, e, err)
		}
	}
}

func FuzzParseICMPEcho(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0x12, 0x34, 0, 9}, false)
	f.Add(append([]byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 1, 2, 198, 18, 1, 1}, 0, 0, 0, 0, 1, 2, 3, 4), true)
	f.Fuzz(func(t *testing.T, b []byte, ipHeader bool) {
		e, err := parseICMPEcho(b, ipHeader)
		if err != nil {
			return
		}
		off := 0
		if ipHeader {
			off = int(b[0]&0xf) * 4
		}
		if len(b) < off+8 || e.Type != b[off] || e.ID != binary.BigEndian.Uint16(b[off+4:]) {
			t.Fatalf("echo %+v from % x", e, b)
		}
	})
}
