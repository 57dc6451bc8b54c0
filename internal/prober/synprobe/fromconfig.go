package synprobe

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Target is one address and port worth SYN-probing, with the real
// servers whose full checks connect there.
type Target struct {
	Addr        netip.AddrPort         // where the probes go
	RealServers []config.RealServerKey // whose checks they speed up
}

// Skip is a real server (or one of its checkers) that is not SYN-probed,
// and why.
type Skip struct {
	RealServer config.RealServerKey // the real server
	Pos        config.Pos           // the block that decided it
	Reason     string               // for logs: "UDP service", "no port", ...
}

// probed reports whether a checker's endpoint is a TCP listener whose
// health a SYN probe foretells.
func probed(t config.CheckerType) bool {
	return t == config.TCPCheck || t == config.HTTPGet || t == config.SSLGet || t == config.SMTPCheck
}

// notTCP says why a checker type gets no SYN probe.
func notTCP(t config.CheckerType) string {
	switch t {
	case config.DNSCheck, config.UDPCheck:
		return fmt.Sprintf("%s is not a TCP check (UDP: it runs on its own delay_loop)", t)
	case config.PingCheck:
		return fmt.Sprintf("%s is not a TCP check (ICMP: it runs on its own delay_loop)", t)
	case config.MiscCheck, config.FileCheck:
		return fmt.Sprintf("%s is not a TCP check (no network endpoint)", t)
	}
	return fmt.Sprintf("%s is not a TCP check", t)
}

// endpoints returns the blocks whose connect_ip:connect_port c checks: c
// itself, and an SMTP_CHECK's host { } blocks (without c when it has only
// hosts).
func endpoints(c *config.Checker) []*config.Checker {
	if c.Type != config.SMTPCheck || c.SMTP == nil || len(c.SMTP.Hosts) == 0 {
		return []*config.Checker{c}
	}
	if c.SMTP.HostsOnly {
		return c.SMTP.Hosts
	}
	return append([]*config.Checker{c}, c.SMTP.Hosts...)
}

// TargetsFromConfig lists what to SYN-probe in cfg: the endpoint of every
// TCP_CHECK, HTTP_GET, SSL_GET and SMTP_CHECK (each host) of the real servers of TCP virtual
// servers (its connect_ip and connect_port, which default to the real
// server's), each once however many checks share it. Everything else is
// returned in skipped with a reason: services that are not TCP, endpoints
// without a port (fwmark services), checkers of other types, and checks
// that leave through a firewall mark or a bound address or interface (a
// probe would not take their path).
func TargetsFromConfig(cfg *config.Config) (targets []Target, skipped []Skip) {
	at := map[netip.AddrPort]int{}
	for _, vs := range cfg.VirtualServers {
		for _, rs := range vs.RealServers {
			key := rs.Key(vs)
			if vs.Protocol != config.TCP {
				skipped = append(skipped, Skip{key, vs.Pos, fmt.Sprintf("%s service: SYN probes need TCP", vs.Protocol)})
				continue
			}
			if len(rs.Checkers) == 0 {
				skipped = append(skipped, Skip{key, rs.Pos, "no checker"})
			}
			var blocks []*config.Checker
			for _, c := range rs.Checkers {
				blocks = append(blocks, endpoints(c)...)
			}
			for _, c := range blocks {
				switch {
				case !probed(c.Type):
					skipped = append(skipped, Skip{key, c.Pos, notTCP(c.Type)})
					continue
				case c.ConnectPort == 0 || !c.ConnectIP.IsValid():
					skipped = append(skipped, Skip{key, c.Pos, "no address or port to probe (fwmark service?)"})
					continue
				case c.FWMark != 0 || c.BindTo.IsValid() || c.BindIf != "":
					skipped = append(skipped, Skip{key, c.Pos, "the check uses fwmark, bindto or bind_if; a probe would take another path"})
					continue
				}
				ap := netip.AddrPortFrom(c.ConnectIP.Unmap(), c.ConnectPort)
				i, ok := at[ap]
				if !ok {
					i = len(targets)
					at[ap] = i
					targets = append(targets, Target{Addr: ap})
				}
				if !slices.Contains(targets[i].RealServers, key) {
					targets[i].RealServers = append(targets[i].RealServers, key)
				}
			}
		}
	}
	return targets, skipped
}
