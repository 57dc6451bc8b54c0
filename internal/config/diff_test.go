package config

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/testenv"
)

// Expected outcomes of a differential case.
const (
	agree    = iota // keepalived -t and lvsprobe agree on valid/invalid
	kaStrict        // deliberate: keepalived -t fails, lvsprobe accepts with a warning
	lpStrict        // deliberate: lvsprobe rejects, keepalived -t accepts
)

// diffBase is an LVS-only configuration both programs accept. The
// markers @VS@, @RS@ and @CHK@ are where variants insert lines.
const diffBase = `global_defs {
   router_id DIFF
}
virtual_server 198.18.0.1 80 {
   delay_loop 6
   lb_algo rr
   lb_kind NAT
   protocol TCP
@VS@
   real_server 198.18.1.1 80 {
      weight 1
@RS@
      HTTP_GET {
         url {
            path /
         }
@CHK@
      }
   }
   real_server 198.18.1.2 80 {
      TCP_CHECK {
         connect_timeout 3
      }
   }
}
`

type diffCase struct {
	name   string
	vs     string // lines added to the virtual server
	rs     string // lines added to the first real server
	chk    string // lines added to its HTTP_GET
	edit   func(string) string
	extra  string // text appended at the end of the file
	expect int
	quiet  bool // kaStrict without an lvsprobe warning (VRRP is not lvsprobe's)
}

func (c diffCase) render() string {
	s := strings.NewReplacer("@VS@", c.vs, "@RS@", c.rs, "@CHK@", c.chk).Replace(diffBase)
	if c.edit != nil {
		s = c.edit(s)
	}
	return s + c.extra
}

func replace(old, new string) func(string) string {
	return func(s string) string { return strings.Replace(s, old, new, 1) }
}

// diffCases is the generated corpus: valid variants exercising the lexer
// and every checker, broken variants of each kind, and the deliberate
// disagreements listed in DISAGREEMENTS.md.
var diffCases = []diffCase{
	{name: "base"},
	{name: "comments", vs: "   ! a comment\n   # another\n   alpha ! trailing", chk: "         connect_port 80 # trailing"},
	{name: "braces on next line", edit: replace("real_server 198.18.1.2 80 {", "real_server 198.18.1.2 80\n   {")},
	{name: "one-line blocks", extra: "virtual_server 198.18.0.3 80 { lb_algo rr\nlb_kind DR\nprotocol TCP\nreal_server 198.18.1.9 80 { TCP_CHECK { connect_timeout 1 } } }\n"},
	{name: "quoted strings", rs: `      virtualhost "www.example.com"`},
	{name: "definitions", edit: func(s string) string {
		return "$RS=198.18.1.7\n$T=connect_timeout 2\n" + strings.Replace(s, "198.18.1.2 80", "$RS 80", 1)
	}, chk: "         ${T}"},
	{name: "conditional lines", vs: "@other lb_algo bogus\n@^other persistence_timeout 30"},
	{name: "decimal timers", vs: "   delay_loop 1.5\n   connect_timeout 0.25\n   delay_before_retry 0.000001"},
	{name: "inherited timers", vs: "   retry 3\n   warmup 2", rs: "      delay_loop 9\n      retry 2", chk: "         retry 0"},
	{name: "fwmark", edit: func(s string) string {
		return strings.Replace(strings.Replace(s, "virtual_server 198.18.0.1 80 {", "virtual_server fwmark 7 {", 1), "   protocol TCP\n", "", 1)
	}},
	{name: "group", extra: "virtual_server_group G {\n 198.18.0.10-12 80\n 198.18.0.20 8080\n fwmark 3\n}\nvirtual_server group G {\n lb_algo wlc\n lb_kind DR\n protocol TCP\n real_server 198.18.1.4 {\n  TCP_CHECK {\n   connect_port 80\n  }\n }\n}\n"},
	{name: "ipv6", extra: "virtual_server 2001:db8::1 443 {\n lb_algo sh\n sh-port\n lb_kind DR\n protocol TCP\n real_server 2001:db8::2 443 {\n  SSL_GET {\n   url {\n    path /health\n    status_code 200-204 301\n   }\n  }\n }\n}\n"},
	{name: "tunnel", vs: "   lvs_method TUN type gue port 6080 csum"},
	{name: "sorry server", vs: "   sorry_server 198.18.2.1 80\n   sorry_server_inhibit\n   quorum 1\n   hysteresis 0"},
	{name: "persistence", vs: "   persistence_timeout 600\n   persistence_granularity 255.255.255.0"},
	{name: "all checkers", rs: "      DNS_CHECK {\n         type A\n         name example.com\n      }\n      UDP_CHECK {\n         payload 0102\n         require_reply 01xx\n      }\n      PING_CHECK {\n      }\n      SMTP_CHECK {\n         helo_name lb\n      }"},
	{name: "http options", chk: "         http_protocol 1.1\n         virtualhost h.example\n         fast_recovery\n         enable_sni\n         connect_ip 198.18.1.1\n         bindto 198.18.0.1\n         log_all_failures"},
	{name: "url options", edit: replace("path /\n", "path /\n            digest 9b3a0c85a887a256d6939da88aabd8cd\n            status_code 200 302\n            virtualhost u.example\n")},
	{name: "tunnel options on NAT", vs: "   lvs_method NAT type gue port 5"},
	{name: "boolean arguments", rs: "      alpha yes\n      inhibit_on_failure no", chk: "         alpha off"},
	{name: "tunnelled real server of the other family", edit: replace("real_server 198.18.1.2 80 {", "real_server 2001:db8::2 80 {\n      lvs_method TUN")},
	{name: "real server without port", edit: replace("real_server 198.18.1.2 80", "real_server 198.18.1.2")},
	{name: "two urls", edit: replace("path /\n         }\n", "path /\n         }\n         url {\n            path /b\n            status_code 500\n         }\n")},
	{name: "glob include matching nothing", extra: "include /nonexistent-lvsprobe-dir/*.conf\n"},

	{name: "conditional on the host name", vs: "@" + defaultConfigID() + " delay_loop abc"},
	{name: "bad delay_loop", vs: "   delay_loop abc"},
	{name: "zero delay_loop", vs: "   delay_loop 0"},
	{name: "negative timer", chk: "         connect_timeout -1"},
	{name: "too many decimals", vs: "   connect_timeout 1.0000001"},
	{name: "bad scheduler", edit: replace("lb_algo rr", "lb_algo roundrobin")},
	{name: "bad method", edit: replace("lb_kind NAT", "lb_kind MASQ")},
	{name: "bad protocol", edit: replace("protocol TCP", "protocol ICMP")},
	{name: "bad weight", edit: replace("weight 1", "weight -1")},
	{name: "bad rs address", edit: replace("real_server 198.18.1.2 80", "real_server 198.18.1.300 80")},
	{name: "bad vs address", edit: replace("virtual_server 198.18.0.1 80", "virtual_server 198.18.0 80")},
	{name: "bad port", chk: "         connect_port 70000"},
	{name: "bad retry", chk: "         retry x"},
	{name: "vs retry zero", vs: "   retry 0"},
	{name: "unknown checker", rs: "      XYZ_CHECK {\n      }"},
	{name: "missing brace", edit: func(s string) string { return strings.TrimSuffix(s, "}\n") }},
	{name: "extra brace", extra: "}\n"},
	{name: "no url", edit: replace("         url {\n            path /\n         }\n", "")},
	{name: "url without path", edit: replace("path /", "digest 9b3a0c85a887a256d6939da88aabd8cd")},
	{name: "bad status code", edit: replace("path /\n", "path /\n            status_code 99\n")},
	{name: "bad digest", edit: replace("path /\n", "path /\n            digest xyz\n")},
	{name: "bad http_protocol", chk: "         http_protocol 2.0"},
	{name: "family mismatch", edit: replace("real_server 198.18.1.2 80", "real_server 2001:db8::2 80")},
	{name: "bad group range", extra: "virtual_server_group G {\n 198.18.0.10-5 80\n}\n"},
	{name: "zero persistence", vs: "   persistence_timeout 0"},
	{name: "zero quorum", vs: "   quorum 0"},
	{name: "gue without port", vs: "   lvs_method TUN type gue"},
	{name: "sh-port without sh", vs: "   sh-port"},
	{name: "bad dns type", rs: "      DNS_CHECK {\n         type BOGUS\n      }"},
	{name: "long bind_if", chk: "         bind_if 1234567890123456"},
	{name: "missing parameter", vs: "   delay_loop"},

	{name: "unknown keyword", vs: "   foo_bar 1", expect: kaStrict},
	{name: "no scheduler", edit: replace("   lb_algo rr\n", ""), expect: kaStrict},
	{name: "no forwarding method", edit: replace("   lb_kind NAT\n", ""), expect: kaStrict},
	{name: "no protocol", edit: replace("   protocol TCP\n", ""), expect: kaStrict},
	{name: "nb_get_retry", chk: "         nb_get_retry 2", expect: kaStrict},
	{name: "ports differ under DR", edit: func(s string) string {
		return strings.Replace(strings.Replace(s, "lb_kind NAT", "lb_kind DR", 1), "198.18.1.2 80", "198.18.1.2 81", 1)
	}, expect: kaStrict},
	{name: "quorum above weight", vs: "   quorum 50", expect: kaStrict},
	{name: "hysteresis not below quorum", vs: "   hysteresis 1", expect: kaStrict},
	{name: "ops on tcp", vs: "   ops", expect: kaStrict},
	{name: "zero port without persistence", edit: replace("virtual_server 198.18.0.1 80 {", "virtual_server 198.18.0.1 0 {"), expect: kaStrict},
	{name: "virtual server without real servers", extra: "virtual_server 198.18.0.9 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n}\n", expect: kaStrict},
	{name: "protocol on fwmark", edit: replace("virtual_server 198.18.0.1 80 {", "virtual_server fwmark 7 {\n   protocol UDP"), expect: kaStrict},
	{name: "newer keyword sni_name", chk: "         sni_name h.example", expect: kaStrict},
	{name: "script without script security", rs: "      notify_up /bin/true", expect: kaStrict},
	{name: "vrrp block", extra: "vrrp_instance VI_1 {\n state MASTER\n interface lvsprobe-none0\n virtual_router_id 51\n priority 100\n virtual_ipaddress {\n  198.18.0.1\n }\n}\n", expect: kaStrict, quiet: true},
	{name: "duplicate virtual server", extra: "virtual_server 198.18.0.1 80 {\n lb_algo rr\n lb_kind NAT\n protocol TCP\n real_server 198.18.1.3 80 {\n }\n}\n", expect: lpStrict},
	{name: "missing include file", extra: "include /nonexistent-lvsprobe.conf\n", expect: lpStrict},
}

// keepalivedValid runs `keepalived -t -f path`: true when it exits 0.
// ok is false when keepalived did not decide in time.
func keepalivedValid(t *testing.T, bin, path string) (valid, ok bool, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-t", "-f", path)
	b, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return false, false, string(b)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run keepalived: %v", err)
	}
	// Exit 0 is valid; any code or signal (it crashes on some bad
	// configs) is invalid.
	return err == nil, true, string(b)
}

// TestDifferentialKeepalived checks that lvsprobe and keepalived -t agree
// on valid vs invalid for every generated case, except the deliberate
// disagreements, which must hold as documented.
func TestDifferentialKeepalived(t *testing.T) {
	bin := testenv.RequireProgram(t, "keepalived")
	testenv.RequireRoot(t) // keepalived -t checks script users and interfaces as root
	dir := t.TempDir()
	for i, c := range diffCases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".conf")
			if err := os.WriteFile(path, []byte(c.render()), 0o644); err != nil {
				t.Fatal(err)
			}
			kaValid, ok, kaOut := keepalivedValid(t, bin, path)
			if !ok {
				t.Skipf("keepalived -t did not finish for case %d", i)
			}
			cfg, err := Load(path, LoadOptions{})
			lpValid := err == nil
			switch c.expect {
			case agree:
				if kaValid != lpValid {
					t.Errorf("keepalived valid=%v, lvsprobe valid=%v\nkeepalived:\n%s\nlvsprobe: %v", kaValid, lpValid, kaOut, err)
				}
			case kaStrict:
				if kaValid || !lpValid || len(cfg.Warnings) == 0 && !c.quiet {
					t.Errorf("deliberate disagreement no longer holds: keepalived valid=%v, lvsprobe err=%v warnings=%v\nkeepalived:\n%s", kaValid, err, cfg.warningsOrNil(), kaOut)
				}
			case lpStrict:
				if !kaValid || lpValid {
					t.Errorf("deliberate disagreement no longer holds: keepalived valid=%v, lvsprobe err=%v\nkeepalived:\n%s", kaValid, err, kaOut)
				}
			}
		})
	}
}

func (c *Config) warningsOrNil() []Diagnostic {
	if c == nil {
		return nil
	}
	return c.Warnings
}
