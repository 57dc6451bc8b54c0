package config

import (
	"slices"
	"testing"
)

// TestMiscPathArgv checks misc_path against keepalived's
// set_script_params_array: the first word of the line, quotes honoured, is
// split again into argv; more words are an error (keepalived drops them).
func TestMiscPathArgv(t *testing.T) {
	tests := []struct {
		line    string
		args    []string
		wantErr string
	}{
		{line: `misc_path /bin/true`, args: []string{"/bin/true"}},
		{line: `misc_path "/bin/check 198.18.1.2 80"`, args: []string{"/bin/check", "198.18.1.2", "80"}},
		{line: `misc_path "/bin/sh -c 'curl -sf http://x/ && exit 9 || exit 1'"`, args: []string{"/bin/sh", "-c", "curl -sf http://x/ && exit 9 || exit 1"}},
		{line: `misc_path '/bin/check "a  b"'`, args: []string{"/bin/check", "a  b"}},
		{line: `misc_path /bin/check 198.18.1.2`, wantErr: `keepalived runs only "/bin/check"`},
		{line: `misc_path "  "`, wantErr: "missing script"},
		{line: `misc_path "/bin/check 'open"`, wantErr: "misc_path"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			cfg, diags := parseString(t, rsBlock("", " MISC_CHECK {\n  "+tt.line+"\n }"), LoadOptions{})
			if tt.wantErr != "" {
				if !hasMsg(diags, tt.wantErr) {
					t.Fatalf("diagnostics %v, want %q", diags, tt.wantErr)
				}
				return
			}
			if cfg == nil {
				t.Fatalf("parse failed: %v", diags)
			}
			m := cfg.VirtualServers[0].RealServers[0].Checkers[0].Misc
			if !slices.Equal(m.Path.Args, tt.args) {
				t.Fatalf("argv %q, want %q", m.Path.Args, tt.args)
			}
		})
	}
}
