package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, rsBlock("", " TCP_CHECK {\n }\n HTTP_GET {\n url {\n path /\n }\n }\n DNS_CHECK {\n }\n MISC_CHECK {\n misc_path /bin/true\n }"))
	vs := cfg.VirtualServers[0]
	if vs.DelayLoop != 60*time.Second || vs.Quorum != 1 || vs.Protocol != TCP {
		t.Errorf("virtual server defaults: %+v", vs)
	}
	rs := vs.RealServers[0]
	if rs.Weight != 1 || rs.Method != NAT || rs.Port != 80 {
		t.Errorf("real server defaults: %+v", rs)
	}
	tests := []struct {
		typ          CheckerType
		retry        int
		dbr          time.Duration
		connectTO    time.Duration
		delay, warm  time.Duration
		connectPort  uint16
		wantConnAddr bool
	}{
		{TCPCheck, 1, time.Second, 5 * time.Second, 60 * time.Second, 60 * time.Second, 80, true},
		{HTTPGet, 1, 3 * time.Second, 5 * time.Second, 60 * time.Second, 60 * time.Second, 80, true},
		{DNSCheck, 3, 60 * time.Second, 5 * time.Second, 60 * time.Second, 60 * time.Second, 80, true},
		{MiscCheck, 0, time.Second, 0, 60 * time.Second, 60 * time.Second, 0, false},
	}
	for i, tt := range tests {
		c := rs.Checkers[i]
		if c.Type != tt.typ || c.Retry != tt.retry || c.DelayBeforeRetry != tt.dbr || c.ConnectTimeout != tt.connectTO ||
			c.DelayLoop != tt.delay || c.Warmup != tt.warm || c.ConnectPort != tt.connectPort ||
			c.ConnectIP.IsValid() != tt.wantConnAddr {
			t.Errorf("%s: got %+v", tt.typ, c)
		}
	}
	u := rs.Checkers[1].HTTP.URLs[0]
	if len(u.StatusCodes) != 1 || u.StatusCodes[0] != (StatusRange{200, 299}) {
		t.Errorf("status codes %v", u.StatusCodes)
	}
	if dns := rs.Checkers[2].DNS; dns.Type != "SOA" || dns.Name != "." {
		t.Errorf("dns defaults %+v", dns)
	}
	if m := rs.Checkers[3].Misc; m.Timeout != 60*time.Second || len(m.Path.Args) != 1 {
		t.Errorf("misc defaults %+v", m)
	}
}

func TestInheritance(t *testing.T) {
	src := `virtual_server 198.18.0.1 80 {
 lb_algo wrr
 lb_kind DR
 delay_loop 10
 connect_timeout 2.5
 retry 4
 delay_before_retry 7
 warmup 0
 weight 3
 virtualhost vs.example
 alpha
 inhibit_on_failure
 real_server 198.18.1.1 80 {
  delay_loop 20
  virtualhost rs.example
  HTTP_GET {
   url {
    path /a
   }
   url {
    path /b
    virtualhost url.example
   }
  }
 }
 real_server 198.18.1.2 80 {
  weight 9
  retry 2
  alpha no
  inhibit_on_failure off
  TCP_CHECK {
   connect_port 8080
   connect_ip 198.18.2.2
   delay_before_retry 0.25
   retry 0
   alpha yes
  }
  HTTP_GET {
   virtualhost chk.example
   url {
    path /c
   }
  }
 }
}
`
	vs := mustParse(t, src).VirtualServers[0]
	r1, r2 := vs.RealServers[0], vs.RealServers[1]
	if r1.Weight != 3 || !r1.Alpha || !r1.InhibitOnFailure || r1.Method != DR {
		t.Errorf("rs1 inherits: %+v", r1)
	}
	if r2.Weight != 9 || r2.Alpha || r2.InhibitOnFailure {
		t.Errorf("rs2 overrides: %+v", r2)
	}
	c := r1.Checkers[0]
	if c.DelayLoop != 20*time.Second || c.ConnectTimeout != 2500*time.Millisecond || c.Retry != 4 ||
		c.DelayBeforeRetry != 7*time.Second || c.Warmup != 0 || !c.Alpha {
		t.Errorf("rs1 checker: %+v", c)
	}
	if c.HTTP.VirtualHost != "rs.example" || c.HTTP.URLs[0].VirtualHost != "rs.example" || c.HTTP.URLs[1].VirtualHost != "url.example" {
		t.Errorf("virtualhost chain: %q %q %q", c.HTTP.VirtualHost, c.HTTP.URLs[0].VirtualHost, c.HTTP.URLs[1].VirtualHost)
	}
	tc := r2.Checkers[0]
	if tc.ConnectPort != 8080 || tc.ConnectIP != netip.MustParseAddr("198.18.2.2") || tc.Retry != 0 ||
		tc.DelayBeforeRetry != 250*time.Millisecond || !tc.Alpha || tc.DelayLoop != 10*time.Second {
		t.Errorf("rs2 tcp checker: %+v", tc)
	}
	if h := r2.Checkers[1].HTTP; h.VirtualHost != "chk.example" || h.URLs[0].VirtualHost != "chk.example" || r2.Checkers[1].Retry != 2 {
		t.Errorf("rs2 http checker: %+v retry %d", h, r2.Checkers[1].Retry)
	}
}

func TestVirtualServerForms(t *testing.T) {
	src := `virtual_server_group G {
 198.18.0.1-3 80
 198.18.0.10 443
 2001:db8::1-a 80
 fwmark 7 inet6
}
virtual_server group G {
 lb_algo rr
 lb_kind DR
 protocol TCP
 real_server 198.18.1.1 {
 }
}
virtual_server fwmark 9 {
 lb_algo sh
 sh-port
 lb_kind TUN type gue port 6080 csum
 real_server 2001:db8::5 {
 }
}
virtual_server 2001:db8::1 443 {
 lb_algo mh
 mh-fallback
 lb_kind NAT
 persistence_granularity 64
 protocol udp
 real_server [2001:db8::2] 8443 {
 }
}
`
	cfg := mustParse(t, src)
	g := cfg.VirtualServers[0]
	if len(g.Services) != 3+1+10+1 {
		t.Fatalf("group services: %d %v", len(g.Services), g.Services)
	}
	if g.Services[2].String() != "TCP 198.18.0.3:80" || g.Services[14].String() != "FWM 7 IPv6" {
		t.Errorf("group services: %v", g.Services)
	}
	f := cfg.VirtualServers[1]
	if f.Family != "inet6" || f.Tunnel == nil || f.Tunnel.Type != "gue" || f.Tunnel.Port != 6080 || f.Tunnel.Checksum != "csum" {
		t.Errorf("fwmark vs: %+v tunnel %+v", f, f.Tunnel)
	}
	if f.RealServers[0].Tunnel == nil || f.RealServers[0].Port != 0 {
		t.Errorf("fwmark rs: %+v", f.RealServers[0])
	}
	v6 := cfg.VirtualServers[2]
	if v6.Protocol != UDP || v6.Persistence != 360*time.Second || v6.PersistMask != netip.MustParseAddr("ffff:ffff:ffff:ffff::") ||
		v6.RealServers[0].Port != 8443 || len(v6.SchedFlags) != 1 {
		t.Errorf("ipv6 vs: %+v", v6)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"bad delay_loop", vsBlock(" delay_loop abc"), "test.conf:4: delay_loop: invalid number 'abc'"},
		{"bad scheduler", vsBlock(" lb_algo xx"), "test.conf:4: invalid lvs_scheduler 'xx'"},
		{"bad address", "virtual_server 198.18.0.300 80 {\n}\n", "test.conf:1: invalid virtual server: invalid IP address '198.18.0.300'"},
		{"bad rs address", rsBlock("", "") + "virtual_server 198.18.0.9 80 {\n real_server foo 80 {\n }\n}\n", "test.conf:11: invalid real server: invalid IP address 'foo'"},
		{"unknown checker", rsBlock("", " FOO_CHECK {\n }"), "test.conf:6: unknown checker block 'FOO_CHECK'"},
		{"missing brace", vsBlock(" real_server 198.18.1.1 80 {"), "test.conf:1: missing '}': block \"virtual_server\" opened here is not closed"},
		{"extra brace", vsBlock("") + "}\n", "test.conf:7: extra '}'"},
		{"http no url", rsBlock("", " HTTP_GET {\n }"), "test.conf:6: HTTP_GET checker has no url"},
		{"bad weight", rsBlock("", " weight -2"), "test.conf:6: real server weight: negative number '-2'"},
		{"family mismatch", rsBlock("", "") + "virtual_server 198.18.0.9 80 {\n real_server 2001:db8::1 80 {\n }\n}\n", "test.conf:11: address family of virtual server and real server 2001:db8::1 don't match"},
		{"duplicate rs", vsBlock(" real_server 198.18.1.1 80 {\n }\n real_server 198.18.1.1 80 {\n }"), "test.conf:6: real server TCP 198.18.0.1:80 -> 198.18.1.1:80 is duplicated"},
		{"missing parameter", vsBlock(" delay_loop"), "test.conf:4: delay_loop: missing parameter"},
		{"unknown group", "virtual_server group X {\n lb_algo rr\n real_server 198.18.1.1 80 {\n }\n}\n", "test.conf:1: virtual_server_group X is not defined"},
		{"unterminated quote", vsBlock(` virtualhost "abc`), "test.conf:4: unterminated quote"},
		{"gue needs port", vsBlock(" lb_kind TUN type gue"), "test.conf:4: gue tunnels require port"},
		{"sh flag without sh", vsBlock(" sh-port"), "test.conf:4: sh-port only applies to the sh scheduler"},
		{"status code", rsBlock("", " HTTP_GET {\n url {\n path /\n status_code 200-99\n }\n }"), "test.conf:9: invalid HTTP_GET status code '200-99'"},
		{"digest length", rsBlock("", " HTTP_GET {\n url {\n path /\n digest abc\n }\n }"), "test.conf:9: digest 'abc' character length should be 32 rather than 3"},
		{"file check unknown track", rsBlock("", " FILE_CHECK {\n track_file nope\n }"), "test.conf:7: track_file nope not found"},
		{"seq", "~SEQ(i,1,3) x\n", "test.conf:1: ~SEQ is not supported by lvsprobe"},
		{"keyword with block", vsBlock(" delay_loop 5 {\n }"), "test.conf:4: unexpected '{' after delay_loop"},
		{"duplicate vs", rsBlock("", "") + rsBlock("", ""), "test.conf:10: virtual server TCP 198.18.0.1:80 is already defined at test.conf:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := parseString(t, tt.src, LoadOptions{})
			if !hasMsg(diags, tt.want) {
				t.Fatalf("want %q among:\n%s", tt.want, (&Error{Diagnostics: diags}).Error())
			}
		})
	}
}

func TestAllErrorsReported(t *testing.T) {
	_, diags := parseString(t, vsBlock(" delay_loop x\n quorum y\n lb_algo z"), LoadOptions{})
	if len(diags) != 3 {
		t.Fatalf("got %d diagnostics, want 3: %v", len(diags), diags)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown keyword", rsBlock(" foo_bar 1", ""), "test.conf:4: unknown keyword 'foo_bar'"},
		{"no scheduler", "virtual_server 198.18.0.1 80 {\n lb_kind NAT\n real_server 198.18.1.1 80 {\n }\n}\n", "no scheduler set, using default 'wlc'"},
		{"no method", "virtual_server 198.18.0.1 80 {\n lb_algo rr\n real_server 198.18.1.1 80 {\n }\n}\n", "no forwarding method set, using default NAT"},
		{"nb_get_retry", rsBlock("", " HTTP_GET {\n nb_get_retry 2\n url {\n path /\n }\n }"), "test.conf:7: nb_get_retry is deprecated"},
		{"port mismatch", "virtual_server 198.18.0.1 80 {\n lb_algo rr\n lb_kind DR\n real_server 198.18.1.1 81 {\n }\n}\n", "test.conf:4: virtual server UDP 198.18.0.1:80 and real server 198.18.1.1 ports don't match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, tt.src)
			if !hasMsg(cfg.Warnings, tt.want) {
				t.Fatalf("want warning %q among %v", tt.want, cfg.Warnings)
			}
		})
	}
}

func TestVRRPSkipped(t *testing.T) {
	src := `global_defs {
 router_id LVS1
 lvs_flush
 lvs_timeouts tcp 900 tcpfin 30 udp 300
 script_user nobody nogroup
 enable_script_security
 vrrp_strict
}
vrrp_instance VI_1 {
 state MASTER
 virtual_ipaddress {
  198.18.0.1
 }
}
static_ipaddress {
 198.18.9.9/24 dev eth0
}
track_file tf {
 file /tmp/x
}
` + rsBlock("", " FILE_CHECK {\n track_file tf\n weight -5 reverse\n }")
	cfg := mustParse(t, src)
	g := cfg.Global
	if g.RouterID != "LVS1" || !g.LVSFlush || g.LVSTimeoutTCP != 900*time.Second || g.LVSTimeoutUDP != 300*time.Second ||
		g.ScriptUser != "nobody" || g.ScriptGroup != "nogroup" || !g.EnableScriptSecurity {
		t.Errorf("global: %+v", g)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %v", cfg.Warnings)
	}
	f := cfg.VirtualServers[0].RealServers[0].Checkers[0].File
	if f.TrackFile != "tf" || f.Weight != -5 || !f.Reverse {
		t.Errorf("file check: %+v", f)
	}
}

// TestCheckerPortAsWritten: a checker without connect_port goes to the
// real server's port as written, even where keepalived's port rules clear
// it (fwmark, DR) or replace it (DR with another port), as keepalived does;
// a NAT server written without a port is checked on the VS port.
func TestCheckerPortAsWritten(t *testing.T) {
	tests := []struct {
		name, vs, rs  string
		rsPort, check uint16
	}{
		{"fwmark DR clears the port", "fwmark 7", "198.18.1.2 80", 0, 80},
		{"DR other port uses the VS port", "198.18.0.1 80", "198.18.1.2 8080", 80, 8080},
		{"NAT without a port", "198.18.0.1 80", "198.18.1.2", 80, 80},
		{"NAT with a port", "198.18.0.1 80", "198.18.1.2 8080", 8080, 8080},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := "DR"
			if strings.HasPrefix(tt.name, "NAT") {
				method = "NAT"
			}
			cfg := mustParse(t, "virtual_server "+tt.vs+" {\n lvs_sched rr\n lvs_method "+method+"\n protocol TCP\n real_server "+tt.rs+" {\n  TCP_CHECK {\n  }\n }\n}\n")
			rs := cfg.VirtualServers[0].RealServers[0]
			if rs.Port != tt.rsPort || rs.Checkers[0].ConnectPort != tt.check {
				t.Fatalf("real server port %d, check port %d; want %d, %d", rs.Port, rs.Checkers[0].ConnectPort, tt.rsPort, tt.check)
			}
		})
	}
}
