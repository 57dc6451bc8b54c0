package testnet

import (
	"net/netip"
	"strings"
	"testing"
)

const procSample = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 020112C6:A1B2 010112C6:0050 06 00000000:00000000 03:00000F2B 00000000     0        0 0 3 0000000000000000
`

func TestParseProcNetTCP(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []TCPSocket
		wantErr bool
	}{
		{"sample", procSample, []TCPSocket{
			{netip.MustParseAddrPort("127.0.0.1:80"), netip.MustParseAddrPort("0.0.0.0:0"), TCPListen},
			{netip.MustParseAddrPort("198.18.1.2:41394"), netip.MustParseAddrPort("198.18.1.1:80"), TCPTimeWait},
		}, false},
		{"v6", "h\n 0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A\n",
			[]TCPSocket{{netip.MustParseAddrPort("[::1]:8080"), netip.MustParseAddrPort("[::]:0"), TCPListen}}, false},
		{"header only", "h\n", nil, false},
		{"short", "h\n 0: 0100007F:0050\n", nil, true},
		{"bad hex", "h\n 0: 0100007G:0050 00000000:0000 0A\n", nil, true},
		{"bad state", "h\n 0: 0100007F:0050 00000000:0000 XYZ\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcNetTCP(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("socket %d: %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func FuzzParseProcNetTCP(f *testing.F) {
	f.Add(procSample)
	f.Add("h\n 0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A\n")
	f.Fuzz(func(t *testing.T, s string) {
		socks, err := ParseProcNetTCP(strings.NewReader(s))
		if err != nil && socks != nil {
			t.Fatalf("sockets %v returned with error %v", socks, err)
		}
		for _, s := range socks {
			if !s.Local.Addr().IsValid() || !s.Remote.Addr().IsValid() {
				t.Fatalf("invalid address in %v", s)
			}
		}
	})
}
