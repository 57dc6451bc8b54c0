package caps

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Set
		err  error
	}{
		{"", 0, nil},
		{"  ", 0, nil},
		{"cap_net_admin", Of(NetAdmin), nil},
		{"CAP_SETUID, kill", Of(SetUID, Kill), nil},
		{"bpf,perfmon,net_raw", Of(BPF, Perfmon, NetRaw), nil},
		{"cap_checkpoint_restore", Set(1) << 40, nil},
		{"cap_nope", 0, ErrUnknown},
		{"net_admin,", 0, ErrUnknown},
		{"all", 0, ErrUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("Parse(%q) = %s, %v; want %s, %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestSetString(t *testing.T) {
	tests := []struct {
		s    Set
		want string
	}{
		{0, "none"},
		{Of(NetRaw, NetAdmin), "cap_net_admin,cap_net_raw"},
		{Of(BPF) | 1<<50, "cap_bpf,cap_50"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("%#x: %q, want %q", uint64(tt.s), got, tt.want)
		}
	}
}

// FuzzParse: a list Parse accepts prints back (String) to a list that
// parses to the same set.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "cap_net_admin", "CAP_SETUID, kill", "bpf,,x", "cap_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := Parse(s)
		if err != nil || set == 0 {
			return
		}
		again, err := Parse(set.String())
		if err != nil || again != set {
			t.Fatalf("Parse(%q) = %s; its String parses to %s, %v", s, set, again, err)
		}
	})
}
