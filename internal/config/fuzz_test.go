package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes the parser panic, and that every
// error carries a position.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.conf")
	samples, _ := filepath.Glob(filepath.Join(samplesDir, "*"))
	for _, s := range append(seeds, samples...) {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(rsBlock("", " HTTP_GET {\n url {\n path /\n }\n }")))
	f.Add([]byte("$X=a \\\n b\n@x $X {\n}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.conf", data, LoadOptions{ConfigID: "x"})
		if err != nil {
			for _, d := range err.(*Error).Diagnostics {
				if d.Pos.File == "" {
					t.Fatalf("diagnostic without file: %v", d)
				}
			}
			return
		}
		for _, vs := range cfg.VirtualServers {
			if len(vs.Services) == 0 || vs.Scheduler == "" || vs.Method == "" {
				t.Fatalf("unresolved virtual server %+v", vs)
			}
			for _, rs := range vs.RealServers {
				if rs.Method == "" {
					t.Fatalf("unresolved real server %+v", rs)
				}
			}
		}
	})
}

// FuzzValues checks the value decoders: no panics, and a timer that
// parses prints back to the same duration.
func FuzzValues(f *testing.F) {
	for _, s := range []string{"6", "2.5", "0.000001", "1.1234567", "-1", "198.18.0.1-10", "2001:db8::1-ff",
		"198.18.0.0/24", "de ad xX", `"a b" 'c\td' \x41`, "200-299"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := parseTimer(s, 0, 0); err == nil {
			back, err := parseTimer(secondsString(d), 0, 0)
			if err != nil || back != d {
				t.Fatalf("timer %q = %v does not round-trip via %q: %v %v", s, d, secondsString(d), back, err)
			}
		}
		if first, last, err := parseRange(s); err == nil && last.Less(first) {
			t.Fatalf("range %q: last %v before first %v", s, last, first)
		}
		if data, mask, err := parseHex(s, true); err == nil && mask != nil && len(mask) != len(data) {
			t.Fatalf("hex %q: mask and data lengths differ", s)
		}
		_, _ = tokenizeEscaped(s)
		if lo, hi, ok := parseStatusRange(s); ok && (lo > hi || lo < 100 || hi > 599) {
			t.Fatalf("status %q: %d-%d", s, lo, hi)
		}
	})
}
