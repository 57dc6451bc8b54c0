package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with the file at path, or rewrites it under -update.
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run with -update to create): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestCorpusValid loads every testdata/valid/*.conf and compares the
// resolved topology with its .json golden file.
func TestCorpusValid(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.conf")
	if len(files) == 0 {
		t.Fatal("no valid corpus")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f, LoadOptions{})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			var b bytes.Buffer
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			if err := enc.Encode(struct {
				Config   *Config  `json:"config"`
				Warnings []string `json:"warnings"`
			}{cfg, diagStrings(cfg.Warnings)}); err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(f, ".conf")+".json", b.Bytes())
		})
	}
}

// TestCorpusInvalid loads every testdata/invalid/*.conf (and the include
// loop) and compares the diagnostics with its .err golden file.
func TestCorpusInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.conf")
	files = append(files, "testdata/invalid/loop/a.conf")
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			_, err := Load(f, LoadOptions{})
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("load returned %v, want *Error", err)
			}
			for _, d := range ce.Diagnostics {
				if !strings.HasPrefix(d.Pos.File, "testdata/invalid/") || d.Pos.Line < 1 {
					t.Errorf("diagnostic without FILE:LINE: %v", d)
				}
			}
			golden(t, strings.TrimSuffix(f, ".conf")+".err", []byte(err.Error()+"\n"))
		})
	}
}

func diagStrings(ds []Diagnostic) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.String())
	}
	return out
}

// samplesDir is keepalived's sample configurations, shared next to the repo.
const samplesDir = "../../../shared/conformance/keepalived-samples"

var vsLine = regexp.MustCompile(`(?m)^\s*virtual_server\s`)

// TestKeepalivedSamples parses every sample that has a virtual_server: no
// errors, and one resolved virtual server per block.
func TestKeepalivedSamples(t *testing.T) {
	if _, err := os.Stat(samplesDir); err != nil {
		testenv.SkipOrFail(t, "keepalived samples not found at "+samplesDir)
	}
	files, _ := filepath.Glob(filepath.Join(samplesDir, "*"))
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want := len(vsLine.FindAll(data, -1))
		if want == 0 {
			continue
		}
		n++
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f, LoadOptions{})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if len(cfg.VirtualServers) != want {
				t.Errorf("got %d virtual servers, want %d", len(cfg.VirtualServers), want)
			}
			for _, vs := range cfg.VirtualServers {
				if len(vs.Services) == 0 || len(vs.RealServers) == 0 {
					t.Errorf("%s: %d services, %d real servers", vs.ID(), len(vs.Services), len(vs.RealServers))
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("no sample with a virtual_server")
	}
}
