package config

import (
	"testing"
	"time"
)

func TestParseTimer(t *testing.T) {
	tests := []struct {
		in      string
		lo, hi  time.Duration
		want    time.Duration
		wantErr bool
	}{
		{"6", 0, 0, 6 * time.Second, false},
		{"2.5", 0, 0, 2500 * time.Millisecond, false},
		{"0.000001", 0, 0, time.Microsecond, false},
		{".5", 0, 0, 500 * time.Millisecond, false},
		{"3.", 0, 0, 3 * time.Second, false},
		{"1.1234567", 0, 0, 0, true}, // more than microsecond resolution
		{"-1", 0, 0, 0, true},
		{"abc", 0, 0, 0, true},
		{"", 0, 0, 0, true},
		{".", 0, 0, 0, true},
		{"1e3", 0, 0, 0, true},
		{"0", time.Microsecond, 0, 0, true},
		{"5", 0, 4 * time.Second, 0, true},
		{"99999999999999999999", 0, 0, 0, true},
	}
	for _, tt := range tests {
		got, err := parseTimer(tt.in, tt.lo, tt.hi)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseTimer(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseUint(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"0", 0, false}, {"65535", 65535, false}, {"65536", 0, true}, {"-1", 0, true},
		{"1x", 0, true}, {"", 0, true}, {" 7", 7, false},
	}
	for _, tt := range tests {
		got, err := parseUint(tt.in, 0, 65535)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseUint(%q) = %v, %v; want %v, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParseHex(t *testing.T) {
	data, mask, err := parseHex("de ad Bx", true)
	if err != nil || string(data) != "\xde\xad\xb0" || string(mask) != "\xff\xff\xf0" {
		t.Fatalf("parseHex = %x %x %v", data, mask, err)
	}
	if _, _, err := parseHex("abc", false); err == nil {
		t.Error("odd number of digits accepted")
	}
	if _, _, err := parseHex("zz", false); err == nil {
		t.Error("non-hex accepted")
	}
}

func TestTokenizeEscaped(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`misc_path "/bin/check a b" user`, []string{"misc_path", "/bin/check a b", "user"}},
		{`regex 'a b\tc'`, []string{"regex", "a b\tc"}},
		{`x \x41\102\n`, []string{"x", "AB\n"}},
	}
	for _, tt := range tests {
		got, err := tokenizeEscaped(tt.in)
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("tokenizeEscaped(%q) = %q, %v", tt.in, got, err)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("tokenizeEscaped(%q)[%d] = %q, want %q", tt.in, i, got[i], tt.want[i])
			}
		}
	}
	if _, err := tokenizeEscaped(`a "b`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestSecondsString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		60 * time.Second: "60", 2500 * time.Millisecond: "2.5", time.Microsecond: "0.000001", 0: "0",
	} {
		if got := secondsString(d); got != want {
			t.Errorf("secondsString(%v) = %q, want %q", d, got, want)
		}
	}
}
