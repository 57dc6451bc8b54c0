package config

import (
	"errors"
	"strings"
	"testing"
)

// parseString parses src as the file "test.conf".
func parseString(tb testing.TB, src string, opts LoadOptions) (*Config, []Diagnostic) {
	tb.Helper()
	cfg, err := Parse("test.conf", []byte(src), opts)
	if err == nil {
		return cfg, nil
	}
	var ce *Error
	if !errors.As(err, &ce) {
		tb.Fatalf("Parse returned %T, want *Error: %v", err, err)
	}
	return nil, ce.Diagnostics
}

// mustParse parses src and fails the test on any error.
func mustParse(tb testing.TB, src string) *Config {
	tb.Helper()
	cfg, diags := parseString(tb, src, LoadOptions{})
	if diags != nil {
		tb.Fatalf("unexpected errors:\n%s", (&Error{Diagnostics: diags}).Error())
	}
	return cfg
}

// vsBlock wraps body in a minimal valid virtual server.
func vsBlock(body string) string {
	return "virtual_server 198.18.0.1 80 {\n lb_algo rr\n lb_kind NAT\n" + body + "\n protocol TCP\n}\n"
}

// rsBlock wraps body in a minimal valid real server inside vsBlock.
func rsBlock(vsBody, rsBody string) string {
	return vsBlock(vsBody + "\n real_server 198.18.1.1 80 {\n" + rsBody + "\n }")
}

func hasMsg(diags []Diagnostic, sub string) bool {
	for _, d := range diags {
		if strings.Contains(d.String(), sub) {
			return true
		}
	}
	return false
}
