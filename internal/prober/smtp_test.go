package prober

import (
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/testenv"
	"github.com/lvsprobe/lvsprobe/internal/testnet"
)

// smtpBlock is an SMTP_CHECK block.
func smtpBlock(addr netip.AddrPort, timeout time.Duration, helo string, hosts ...*config.Checker) *config.Checker {
	c := checkerFor(config.SMTPCheck, addr, timeout)
	c.SMTP = &config.SMTPOptions{HeloName: helo, Hosts: hosts}
	return c
}

// startExim runs Debian's exim4 as a foreground daemon in rs's namespace
// with a throw-away configuration listening on rs.Addr:25. acl, when set,
// is an ACL section body put in front of the connection or HELO
// ("connect: deny" or "helo: deny").
func startExim(t *testing.T, rs *testnet.RealServer, acl string) *daemon {
	t.Helper()
	exim := testenv.RequireProgram(t, "exim4")
	dir := t.TempDir()
	conf := `primary_hostname = rs.lvsprobe.test
spool_directory = ` + dir + `/spool
log_file_path = ` + dir + `/%slog
exim_user = root
exim_group = root
never_users =
keep_environment =
tls_advertise_hosts =
host_lookup =
rfc1413_hosts =
daemon_smtp_ports = 25
local_interfaces = <; ` + rs.Addr.String() + `
smtp_banner = $smtp_active_hostname ESMTP lvsprobe-test
acl_smtp_connect = acl_connect
acl_smtp_helo = acl_helo
begin acl
acl_connect:
  ` + map[bool]string{true: "deny", false: "accept"}[acl == "connect: deny"] + `
acl_helo:
  ` + map[bool]string{true: "deny", false: "accept"}[acl == "helo: deny"] + `
begin routers
begin transports
`
	path := filepath.Join(dir, "exim.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, rs, exim, "-C", path, "-bdf", "-odf")
	d.listener = func(t testing.TB) int { return listenerPID(t, rs, 25) }
	t.Cleanup(func() { // whatever exim left listening goes too
		if pid := listenerPID(t, rs, 25); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return d
}

// TestLabSMTP runs SMTP_CHECK against a real exim in a real-server
// namespace and breaks it: refused banner, refused HELO, stalled,
// black-holed, stopped.
func TestLabSMTP(t *testing.T) {
	rs := testnet.New(t, testnet.Options{}).RealServers[0]
	top := t // daemons restarted in subtests outlive them
	ex := startExim(top, rs, "")
	const timeout = 2 * time.Second // exim's first answer after a start can take a while on a busy CPU
	ep := netip.AddrPortFrom(rs.Addr, 25)
	ck := mustChecker(t, smtpBlock(ep, timeout, "lb.lvsprobe.test"), CheckerOptions{})
	eventually(t, ck, true, 50, 100*time.Millisecond)
	healthy := func(t *testing.T) {
		t.Helper()
		expect(t, ck, timeout, true, "banner 220; HELO 250; QUIT; ok")
	}
	t.Run("healthy", healthy)
	t.Run("wrong answers", func(t *testing.T) {
		tcp := mustChecker(t, checkerFor(config.TCPCheck, ep, timeout), CheckerOptions{})
		for _, tc := range []struct{ acl, want string }{
			{"connect: deny", `bad greeting banner "550 `},
			{"helo: deny", `bad HELO response "550 `},
		} {
			stopExim(t, rs, ex)
			ex = startExim(top, rs, tc.acl)
			eventually(t, tcp, true, 50, 100*time.Millisecond) // listening
			// A freshly started exim on a busy CPU can take longer than the
			// timeout to send its first banner: wait for an answer, then
			// judge it.
			res := answered(t, ck, timeout, 20)
			if res.OK || !strings.Contains(res.Message, tc.want) {
				t.Fatalf("OK=%v %q, want a failure containing %q", res.OK, res.Message, tc.want)
			}
		}
		stopExim(t, rs, ex)
		ex = startExim(top, rs, "")
		eventually(t, ck, true, 50, 100*time.Millisecond)
	})
	t.Run("stalled", func(t *testing.T) {
		ex.signalChild(t, syscall.SIGSTOP) // the kernel still accepts; no banner comes
		expect(t, ck, timeout, false, "read banner: no answer")
		ex.signalChild(t, syscall.SIGCONT)
		healthy(t)
	})
	t.Run("black-holed", func(t *testing.T) {
		rs.BlackHole(t)
		expect(t, ck, timeout, false, "connect: ")
		rs.Restore(t)
		healthy(t)
	})
	t.Run("stopped", func(t *testing.T) {
		stopExim(t, rs, ex)
		expect(t, ck, timeout, false, "connection refused")
		ex = startExim(top, rs, "")
		eventually(t, ck, true, 50, 100*time.Millisecond)
	})
	t.Run("hosts", func(t *testing.T) {
		host := func(p uint16) *config.Checker {
			return checkerFor(config.SMTPCheck, netip.AddrPortFrom(rs.Addr, p), timeout)
		}
		both := smtpBlock(ep, timeout, "", host(25), host(2525))
		both.SMTP.HostsOnly = true
		res := expect(t, mustChecker(t, both, CheckerOptions{}), 2*timeout, false, "host "+rs.Addr.String()+":2525; connect: ")
		if !strings.Contains(res.Message, "HELO 250; QUIT; host") {
			t.Fatalf("first host not checked first: %q", res.Message)
		}
		one := smtpBlock(ep, timeout, "", host(25))
		one.SMTP.HostsOnly = true
		expect(t, mustChecker(t, one, CheckerOptions{}), timeout, true, "ok")
	})
}

// TestSMTPProtocol covers keepalived's reading of replies with a Go
// server: a multi-line banner fails (smtp_get_status wants "220 "), a
// status without text passes only with a space, the QUIT answer is not
// judged, and the default helo_name is keepalived's.
func TestSMTPProtocol(t *testing.T) {
	tests := []struct {
		name   string
		script []string // lines sent, one per line read (the first before any)
		ok     bool
		msg    string
	}{
		{"plain", []string{"220 mx ESMTP\r\n", "250 hi\r\n", "221 bye\r\n"}, true, "QUIT; ok"},
		{"multi-line banner", []string{"220-mx ESMTP\r\n220 more\r\n", "250 hi\r\n", "221 bye\r\n"}, false, `bad greeting banner "220-mx ESMTP"`},
		{"bare status", []string{"220\r\n", "250 hi\r\n", "221 bye\r\n"}, false, "bad greeting banner"},
		{"any QUIT answer", []string{"220 mx\n", "250 hi\n", "500 what\n"}, true, "ok"},
		{"closed after HELO", []string{"220 mx\r\n", "250 hi\r\n"}, false, "read QUIT response"},
		{"421 banner", []string{"421 busy\r\n"}, false, `bad greeting banner "421 busy"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listenLoopback(t)
			helo := make(chan string, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 512)
				for i, line := range tt.script {
					if i > 0 {
						n, err := c.Read(buf)
						if err != nil {
							return
						}
						if i == 1 {
							helo <- string(buf[:n])
						}
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
			ck := mustChecker(t, smtpBlock(netip.MustParseAddrPort(l.Addr().String()), time.Second, config.DefaultSMTPHeloName), CheckerOptions{})
			expect(t, ck, time.Second, tt.ok, tt.msg)
			if tt.ok {
				if got := <-helo; got != "HELO smtpchecker.keepalived.org\r\n" {
					t.Fatalf("HELO line %q", got)
				}
			}
		})
	}
	if got := smtpStatus([]byte("250")); got != 250 {
		t.Fatalf("status of %q: %d", "250", got)
	}
}

// stopExim kills exim's listener and the process started, and waits
// until nothing listens on port 25.
func stopExim(t *testing.T, rs *testnet.RealServer, ex *daemon) {
	t.Helper()
	for range 50 {
		pid := listenerPID(t, rs, 25)
		if pid == 0 {
			ex.kill()
			return
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("exim still listening after SIGKILL")
}

func FuzzSMTPStatus(f *testing.F) {
	for _, s := range []string{"220 mx", "220-mx", "250", "2500", "abc", "220\r", "22"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		st := smtpStatus(line)
		if st == -1 {
			return
		}
		if st < 0 || st > 999 || len(line) < 3 || strconv.Itoa(st) != strings.TrimLeft(string(line[:3]), "0") && st != 0 {
			t.Fatalf("%q: status %d", line, st)
		}
	})
}

// answered runs ck until the server says something (a result that is not
// "no answer", the timeout of a server not yet serving), at most n times.
func answered(t *testing.T, ck Checker, bound time.Duration, n int) Result {
	t.Helper()
	var res Result
	for range n {
		if res = within(t, ck, bound); !strings.Contains(res.Message, "no answer") {
			return res
		}
	}
	t.Fatalf("%s: no answer in %d attempts: %s", ck, n, res.Message)
	return res
}
