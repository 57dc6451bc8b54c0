package config

import (
	"slices"
	"testing"
)

// TestScriptArgv checks that notify and quorum command lines split into
// argv as keepalived's notify_script_init splits them: the quoted command
// word is split again, honouring quotes and escapes inside it.
func TestScriptArgv(t *testing.T) {
	tests := []struct {
		line       string
		args       []string
		user, grp  string
		wantErrMsg string
	}{
		{line: `notify_up /bin/n`, args: []string{"/bin/n"}},
		{line: `notify_up "/bin/n up 198.18.1.1"`, args: []string{"/bin/n", "up", "198.18.1.1"}},
		{line: `notify_up "/bin/n 'a b' c"`, args: []string{"/bin/n", "a b", "c"}},
		{line: `notify_up '/bin/n "x  y"'`, args: []string{"/bin/n", "x  y"}},
		{line: `notify_up "/bin/n a\\ b"`, args: []string{"/bin/n", "a b"}},
		{line: `notify_up "/bin/n ;rm -rf /" nobody nogroup`, args: []string{"/bin/n", ";rm", "-rf", "/"}, user: "nobody", grp: "nogroup"},
		{line: `notify_up "/bin/n 'open"`, wantErrMsg: "missing terminating"},
		{line: `notify_up "  "`, wantErrMsg: "missing script"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			cfg, diags := parseString(t, rsBlock("", tt.line), LoadOptions{})
			if tt.wantErrMsg != "" {
				if !hasMsg(diags, tt.wantErrMsg) {
					t.Fatalf("diagnostics %v, want %q", diags, tt.wantErrMsg)
				}
				return
			}
			if cfg == nil {
				t.Fatalf("parse failed: %v", diags)
			}
			s := cfg.VirtualServers[0].RealServers[0].NotifyUp
			if s == nil || !slices.Equal(s.Args, tt.args) || s.User != tt.user || s.Group != tt.grp {
				t.Fatalf("script %+v, want args %q user %q group %q", s, tt.args, tt.user, tt.grp)
			}
		})
	}
}
