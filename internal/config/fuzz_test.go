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
