package config

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBadInput feeds hostile input: every case must give FILE:LINE errors,
// never a panic, and never an unbounded report.
func TestBadInput(t *testing.T) {
	full, err := os.ReadFile("testdata/valid/full.conf")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	garbage := make([]byte, 64<<10)
	rng.Read(garbage)
	deep := strings.Repeat("a {\n", 10000) + strings.Repeat("}\n", 10000)
	unclosed := strings.Repeat("a {\n", 10000)
	tests := []struct {
		name string
		data []byte
		want string // a diagnostic that must be present
	}{
		{"truncated", full[:len(full)/2], "missing '}'"},
		{"binary garbage", garbage, "bad.conf:"},
		{"10 MB line", append([]byte("virtual_server 198.18.0.1 80 {\n"), bytes.Repeat([]byte("x"), 10<<20)...), "bad.conf:2: line longer than"},
		{"10000-deep nesting", []byte(deep), "bad.conf:65: blocks nested deeper than 64"},
		{"10000 unclosed blocks", []byte(unclosed), "missing '}'"},
		{"10000 extra braces", []byte(strings.Repeat("}\n", 10000)), "bad.conf:1: extra '}'"},
		{"NUL bytes", []byte("virtual_server\x00 1 {\n"), "bad.conf:1: NUL byte in line"},
		{"recursive definition", []byte("$A=$A$A\nx $A\n"), "bad.conf:2:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := parseString(t, string(tt.data), LoadOptions{})
			if len(diags) == 0 {
				t.Fatal("accepted")
			}
			if len(diags) > maxDiagnostics+1 {
				t.Errorf("%d diagnostics, more than the cap", len(diags))
			}
			for _, d := range diags {
				if d.Pos.File != "test.conf" || d.Pos.Line < 1 {
					t.Fatalf("diagnostic without FILE:LINE: %q", d)
				}
			}
			want := strings.Replace(tt.want, "bad.conf", "test.conf", 1)
			if !hasMsg(diags, want) {
				t.Errorf("want %q among %d diagnostics, first: %v", want, len(diags), diags[:min(3, len(diags))])
			}
		})
	}
}

// TestIncludeCycleBounded checks a directory that includes itself by glob.
func TestIncludeCycleBounded(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.conf")
	if err := os.WriteFile(p, []byte("include *.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.conf"), []byte("include *.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p, LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "include loop") {
		t.Fatalf("err = %v", err)
	}
}

// TestExpansionBomb checks that nested multiline definitions cannot
// expand exponentially.
func TestExpansionBomb(t *testing.T) {
	src := "$A=x \\\nx\n"
	for _, n := range []string{"B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U"} {
		prev := string(rune(n[0] - 1))
		src += "$" + n + "=$" + prev + " \\\n$" + prev + "\n"
	}
	src += "$U\n"
	_, diags := parseString(t, src, LoadOptions{})
	if !hasMsg(diags, "parameter expansions") {
		t.Fatalf("no expansion limit error: %v", diags[:min(3, len(diags))])
	}
}
