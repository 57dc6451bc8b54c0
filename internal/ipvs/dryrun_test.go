package ipvs

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

func TestDryRunCommands(t *testing.T) {
	v6 := config.ServiceKey{Protocol: config.TCP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 443, Family: "inet6"}
	sctp := config.ServiceKey{Protocol: config.SCTP, Addr: netip.MustParseAddr("198.18.0.1"), Port: 3868, Family: "inet"}
	fwm6 := config.ServiceKey{FWMark: 12, Family: "inet6"}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"v6 service", ipvsadmServiceCmd("-A", Service{ServiceKey: v6, Scheduler: "rr"}), "ipvsadm -A -t [2001:db8::1]:443 -s rr"},
		{"sctp persistent", ipvsadmServiceCmd("-E", Service{ServiceKey: sctp, Scheduler: "wrr", Flags: []string{"persistent"}, Timeout: 60}),
			"ipvsadm -E --sctp-service 198.18.0.1:3868 -s wrr -p 60"},
		{"fwmark v6 with /64 granularity", ipvsadmServiceCmd("-A", Service{ServiceKey: fwm6, Scheduler: "mh", Flags: []string{"mh-port", "persistent"}, Timeout: 10, Netmask: netip.MustParseAddr("ffff:ffff:ffff:ffff::")}),
			"ipvsadm -A -f 12 -6 -s mh -b flag-2 -p 10 -M 64"},
		{"v6 DR destination", ipvsadmDestCmd("-a", v6, Destination{Addr: netip.MustParseAddr("2001:db8::10"), Port: 443, Weight: 2, Method: config.DR}),
			"ipvsadm -a -t [2001:db8::1]:443 -r [2001:db8::10]:443 -g -w 2"},
		{"ipip tunnel prints no options", ipvsadmDestCmd("-e", sctp, Destination{Addr: netip.MustParseAddr("198.18.1.1"), Port: 3868, Method: config.TUN, Tunnel: &config.Tunnel{Type: "ipip"}}),
			"ipvsadm -e --sctp-service 198.18.0.1:3868 -r 198.18.1.1:3868 -i -w 0"},
		{"gre tunnel with csum", ipvsadmDestCmd("-a", sctp, Destination{Addr: netip.MustParseAddr("198.18.1.1"), Port: 3868, Weight: 1, Method: config.TUN, Tunnel: &config.Tunnel{Type: "gre", Checksum: "csum"}}),
			"ipvsadm -a --sctp-service 198.18.0.1:3868 -r 198.18.1.1:3868 -i --tun-type gre --tun-csum -w 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got  %q\nwant %q", tt.got, tt.want)
			}
		})
	}
}

func TestDryRunAnswersLikeTheKernel(t *testing.T) {
	ctx := context.Background()
	d := NewDryRun(nil, nil)
	k := config.ServiceKey{Protocol: config.UDP, Addr: netip.MustParseAddr("198.18.0.1"), Port: 53, Family: "inet"}
	dst := Destination{Addr: netip.MustParseAddr("198.18.1.1"), Port: 53, Weight: 1}
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"dest into missing service", func() error { return d.AddDestination(ctx, k, dst) }, syscall.ESRCH},
		{"edit missing service", func() error { return d.UpdateService(ctx, Service{ServiceKey: k, Scheduler: "rr"}) }, syscall.ENOENT},
		{"add", func() error { return d.AddService(ctx, Service{ServiceKey: k, Scheduler: "rr"}) }, nil},
		{"add twice", func() error { return d.AddService(ctx, Service{ServiceKey: k, Scheduler: "rr"}) }, syscall.EEXIST},
		{"edit missing dest", func() error { return d.UpdateDestination(ctx, k, dst) }, syscall.ENOENT},
		{"add dest", func() error { return d.AddDestination(ctx, k, dst) }, nil},
		{"add dest twice", func() error { return d.AddDestination(ctx, k, dst) }, syscall.EEXIST},
		{"delete dest", func() error { return d.DeleteDestination(ctx, k, dst) }, nil},
		{"delete dest twice", func() error { return d.DeleteDestination(ctx, k, dst) }, syscall.ENOENT},
		{"delete service", func() error { return d.DeleteService(ctx, k) }, nil},
		{"delete service twice", func() error { return d.DeleteService(ctx, k) }, syscall.ENOENT},
	}
	for _, tt := range tests {
		err := tt.op()
		if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Fatalf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// FuzzServiceFlags checks that any list of flag names maps to kernel
// bits and back to a canonical list that maps to the same bits.
func FuzzServiceFlags(f *testing.F) {
	f.Add("flag-1,sh-port,persistent")
	f.Add("ops,mh-fallback,FLAG-3,bogus")
	f.Fuzz(func(t *testing.T, s string) {
		var names []string
		start := 0
		for i := 0; i <= len(s); i++ {
			if i == len(s) || s[i] == ',' {
				names = append(names, s[start:i])
				start = i + 1
			}
		}
		bits := flagBits(names)
		if bits&flagHashed != 0 {
			t.Fatalf("HASHED set from %q", s)
		}
		canon := flagList(bits)
		if flagBits(canon) != bits {
			t.Fatalf("%q: bits %#x, canonical %v gives %#x", s, bits, canon, flagBits(canon))
		}
	})
}
