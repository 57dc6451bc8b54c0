//go:build linux

package ipvs

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink/nl"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// replyOf returns the attributes of a GET_DEST reply describing d, as the
// kernel would send them (encoded with the same code that writes d).
func replyOf(t testing.TB, d Destination) []byte {
	t.Helper()
	a, err := destAttr(d)
	if err != nil {
		t.Fatalf("destAttr(%+v): %v", d, err)
	}
	return a.Serialize()
}

func TestTunnelCodec(t *testing.T) {
	tests := []struct {
		name string
		d    Destination
		want *config.Tunnel // after decoding; nil for plain ipip or no tunnel
	}{
		{"nat", Destination{Addr: v4("198.18.1.1"), Port: 8080, Weight: 65535, Method: config.NAT, UpperThreshold: 100, LowerThreshold: 10}, nil},
		{"ipip default", Destination{Addr: v4("198.18.1.1"), Port: 80, Method: config.TUN}, nil},
		{"ipip explicit", Destination{Addr: v4("198.18.1.1"), Port: 80, Method: config.TUN, Tunnel: &config.Tunnel{Type: "ipip", Checksum: "nocsum"}}, nil},
		{"gue csum", Destination{Addr: v4("198.18.1.2"), Port: 80, Method: config.TUN, Tunnel: &config.Tunnel{Type: "gue", Port: 6080, Checksum: "csum"}}, &config.Tunnel{Type: "gue", Port: 6080, Checksum: "csum"}},
		{"gue default checksum", Destination{Addr: v4("198.18.1.2"), Port: 80, Method: config.TUN, Tunnel: &config.Tunnel{Type: "gue", Port: 6080}}, &config.Tunnel{Type: "gue", Port: 6080, Checksum: "nocsum"}},
		{"gre remcsum v6", Destination{Addr: v4("2001:db8::7"), Port: 443, Method: config.TUN, Tunnel: &config.Tunnel{Type: "gre", Checksum: "remcsum"}}, &config.Tunnel{Type: "gre", Checksum: "remcsum"}},
		{"tunnel ignored for dr", Destination{Addr: v4("198.18.1.3"), Port: 80, Weight: 2, Method: config.DR}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fam := familyInet
			if tt.d.Addr.Is6() {
				fam = familyInet6
			}
			got, err := decodeDestAttrs(replyOf(t, tt.d)[4:], fam) // inside IPVS_CMD_ATTR_DEST
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := tt.d
			want.Tunnel = tt.want
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
			got2, err := decodeDest(replyOf(t, tt.d), fam) // the whole reply
			if err != nil || keyOf(got2) != keyOf(got) || !sameDestination(got, got2) {
				t.Errorf("decodeDest = %+v %v, want %+v", got2, err, got)
			}
		})
	}
}

func TestTunnelCodecRefuses(t *testing.T) {
	for _, tun := range []config.Tunnel{{Type: "vxlan"}, {Type: "gue", Port: 6080, Checksum: "fast"}} {
		d := Destination{Addr: v4("198.18.1.1"), Port: 80, Method: config.TUN, Tunnel: &tun}
		if _, err := destAttr(d); !errors.Is(err, ErrUnsupported) {
			t.Errorf("destAttr(%+v): err = %v, want ErrUnsupported", tun, err)
		}
	}
	for _, b := range [][]byte{nil, {1, 2, 3}, nl.NewRtAttr(ipvsCmdAttrDest, nl.NewRtAttr(ipvsDestAttrPort, []byte{1}).Serialize()).Serialize()} {
		if _, err := decodeDest(b, familyInet); err == nil {
			t.Errorf("decodeDest(%x): no error", b)
		}
	}
}

func TestTunnelUnknownNumbersAreCorrected(t *testing.T) {
	got := tunnelFromNumbers(9, 1, 7)
	if _, _, _, err := tunnelNumbers(got); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unknown kernel values decode to %+v, which encodes (err %v)", got, err)
	}
	for _, want := range []config.Tunnel{{Type: "gue", Port: 6080, Checksum: "remcsum"}, {Type: "gre", Checksum: "csum"}} {
		typ, port, flags, err := tunnelNumbers(&want)
		if err != nil {
			t.Fatal(err)
		}
		if got := tunnelFromNumbers(typ, port, flags); *got != want {
			t.Errorf("round trip %+v -> %+v", want, *got)
		}
	}
}

// FuzzDecodeDestTunnel decodes arbitrary GET_DEST replies: no panic, and
// a decoded destination encodes and decodes to the same one (what the
// reconciler compares is what Kernel would write).
func FuzzDecodeDestTunnel(f *testing.F) {
	f.Add(replyOf(f, Destination{Addr: v4("198.18.1.2"), Port: 80, Method: config.TUN, Tunnel: &config.Tunnel{Type: "gue", Port: 6080, Checksum: "csum"}}), false)
	f.Add(replyOf(f, Destination{Addr: v4("2001:db8::7"), Port: 443, Method: config.TUN, Tunnel: &config.Tunnel{Type: "gre", Checksum: "remcsum"}}), true)
	f.Add(replyOf(f, Destination{Addr: v4("198.18.1.1"), Port: 8080, Method: config.NAT}), false)
	f.Fuzz(func(t *testing.T, b []byte, six bool) {
		fam := familyInet
		if six {
			fam = familyInet6
		}
		d, err := decodeDest(b, fam)
		if err != nil {
			return
		}
		a, err := destAttr(d)
		if err != nil {
			return // values lvsprobe never writes
		}
		d2, err := decodeDest(a.Serialize(), fam)
		if err != nil || keyOf(d2) != keyOf(d) || !sameDestination(d, d2) {
			t.Fatalf("not stable: %+v -> %+v (%v)", d, d2, err)
		}
	})
}
