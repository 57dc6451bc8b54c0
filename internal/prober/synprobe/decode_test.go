package synprobe

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// buildPacket returns an IPv4 or IPv6 packet carrying a 20-byte TCP
// header from src:sport to dst:dport with correct checksums.
func buildPacket(src, dst netip.Addr, sport, dport uint16, flags uint8, seq, ack uint32) []byte {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = 5 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 1000)
	binary.BigEndian.PutUint16(tcp[16:], tcpChecksum(src, dst, tcp))
	if src.Is4() {
		ip := make([]byte, 20, 40)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], 40)
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8], ip[9] = 64, 6
		a, b := src.As4(), dst.As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(0, ip)))
		return append(ip, tcp...)
	}
	ip := make([]byte, 40, 60)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 20)
	ip[6], ip[7] = 6, 64
	a, b := src.As16(), dst.As16()
	copy(ip[8:], a[:])
	copy(ip[24:], b[:])
	return append(ip, tcp...)
}

var (
	rs4, us4 = netip.MustParseAddr("198.18.1.2"), netip.MustParseAddr("198.18.0.1")
	rs6, us6 = netip.MustParseAddr("2001:2::2"), netip.MustParseAddr("2001:2::1")
)

func TestDecodeAnswer(t *testing.T) {
	synack4 := buildPacket(rs4, us4, 80, 40000, flagSYN|flagACK, 1, 2)
	partial := buildPacket(rs4, us4, 80, 40000, flagSYN|flagACK, 1, 2)
	binary.BigEndian.PutUint16(partial[36:], fold(pseudoSum(rs4, us4, 20)))
	badsum := buildPacket(rs4, us4, 80, 40000, flagSYN|flagACK, 1, 2)
	badsum[36] ^= 0x5a
	badip := buildPacket(rs4, us4, 80, 40000, flagRST|flagACK, 1, 2)
	badip[10] ^= 1
	bareRST := buildPacket(rs4, us4, 80, 40000, flagRST, 1, 0)
	ack := buildPacket(rs4, us4, 80, 40000, flagACK, 1, 2)
	tests := []struct {
		name    string
		pkt     []byte
		wireLen int
		want    error
	}{
		{"ipv4 synack", synack4, 40, nil},
		{"ipv4 rst", buildPacket(rs4, us4, 80, 40000, flagRST|flagACK, 0, 9), 40, nil},
		{"ipv6 synack", buildPacket(rs6, us6, 443, 40001, flagSYN|flagACK, 1, 2), 60, nil},
		{"offloaded checksum", partial, 40, nil},
		{"padded frame", append(append([]byte(nil), synack4...), 0, 0, 0, 0, 0, 0), 46, nil},
		{"wire longer than ip (padding)", synack4, 1500, nil},
		{"ip longer than wire", synack4, 30, errMalformed},
		{"bad tcp checksum", badsum, 40, errChecksum},
		{"bad ip checksum", badip, 40, errChecksum},
		{"bare rst", bareRST, 40, errNotAnswer},
		{"plain ack", ack, 40, errNotAnswer},
		{"empty", nil, 0, errTruncated},
		{"truncated ip", synack4[:10], 40, errTruncated},
		{"truncated tcp", synack4[:30], 40, errTruncated},
		{"version 5", append([]byte{0x50}, synack4[1:]...), 40, errMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a answer
			err := decodeAnswer(tt.pkt, tt.wireLen, &a)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err == nil && (a.sport == 0 || a.dport < 40000 || !a.src.IsValid() || !a.dst.IsValid()) {
				t.Errorf("decoded %+v", a)
			}
		})
	}
}

func TestPutSYNChecksum(t *testing.T) {
	for _, pair := range [][2]netip.Addr{{us4, rs4}, {us6, rs6}} {
		b := make([]byte, synLen)
		putSYN(b, pair[0], pair[1], 40000, 80, 12345)
		if fold(sum16(pseudoSum(pair[0], pair[1], synLen), b)) != 0xffff {
			t.Errorf("%v: SYN checksum does not verify", pair)
		}
		if b[13] != flagSYN || binary.BigEndian.Uint32(b[4:]) != 12345 {
			t.Errorf("%v: SYN header %x", pair, b)
		}
	}
}

// FuzzDecodeAnswer feeds arbitrary bytes to the answer decoder: it must
// never panic, and what it accepts must be a SYN-ACK or an ACKed RST.
func FuzzDecodeAnswer(f *testing.F) {
	f.Add(buildPacket(rs4, us4, 80, 40000, flagSYN|flagACK, 1, 2), 40)
	f.Add(buildPacket(rs6, us6, 80, 40000, flagRST|flagACK, 1, 2), 60)
	f.Add([]byte{0x45}, 1)
	f.Fuzz(func(t *testing.T, pkt []byte, wireLen int) {
		var a answer
		if decodeAnswer(pkt, wireLen, &a) != nil {
			return
		}
		if a.flags&flagACK == 0 || (a.flags&flagRST == 0 && a.flags&flagSYN == 0) {
			t.Fatalf("accepted flags %#x", a.flags)
		}
	})
}

func TestPortList(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "", false},
		{"\n", "", false},
		{"8080", "8080", false},
		{"40000-40999,50000\n", "40000-40999,50000", false},
		{"2-1", "", true},
		{"70000", "", true},
		{"a-b", "", true},
	}
	for _, tt := range tests {
		got, err := parsePortList(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err = %v", tt.in, err)
			continue
		}
		if s := formatPortList(got); err == nil && s != tt.want {
			t.Errorf("%q: got %q, want %q", tt.in, s, tt.want)
		}
	}
}

// FuzzParsePortList checks that whatever parses formats back to a list
// that parses to the same ranges.
func FuzzParsePortList(f *testing.F) {
	f.Add("40000-40999,50000")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := parsePortList(s)
		if err != nil {
			return
		}
		again, err := parsePortList(formatPortList(rs))
		if err != nil || formatPortList(again) != formatPortList(rs) {
			t.Fatalf("%q: round trip %v, %v", s, again, err)
		}
	})
}

func TestReservePorts(t *testing.T) {
	file := filepath.Join(t.TempDir(), "reserved")
	read := func() string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if err := os.WriteFile(file, []byte("8080\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := reservePorts(file, portRange{40000, 40999})
	if err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "8080,40000-40999\n" {
		t.Errorf("after reserve: %q", got)
	}
	if _, err := reservePorts(file, portRange{40500, 41000}); !errors.Is(err, errPortsInUse) {
		t.Errorf("overlapping reserve: %v, want errPortsInUse", err)
	}
	// Someone else reserves a port meanwhile; release keeps it.
	if err := os.WriteFile(file, []byte("8080,40000-40999,9090\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := v.release(); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "8080,9090\n" {
		t.Errorf("after release: %q", got)
	}
	// A leftover of a killed prober (the same range) is adopted.
	if err := os.WriteFile(file, []byte("40000-40999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err = reservePorts(file, portRange{40000, 40999})
	if err != nil {
		t.Fatalf("adopting a leftover reservation: %v", err)
	}
	if err := v.release(); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "\n" {
		t.Errorf("after releasing the adopted range: %q", got)
	}
}
