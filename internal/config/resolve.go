package config

import (
	"fmt"
	"net/netip"
	"time"
)

// resolveAll applies keepalived's defaults and inheritance (virtual server
// → real server → checker) and fills VirtualServer.Services.
func (p *parser) resolveAll() {
	p.scriptSecurity()
	ids := map[string]Pos{}
	for _, r := range p.vss {
		if !p.resolveVS(r) {
			continue
		}
		id := r.vs.ID()
		if prev, dup := ids[id]; dup {
			p.errorf(r.n, "virtual server %s is already defined at %s", id, prev)
			continue
		}
		ids[id] = r.vs.Pos
		p.cfg.VirtualServers = append(p.cfg.VirtualServers, r.vs)
	}
}

func (p *parser) resolveVS(r *rawVS) bool {
	vs := r.vs
	ok := true
	if r.t.delayLoop != nil {
		vs.DelayLoop = *r.t.delayLoop
	}
	if vs.FWMark != 0 && vs.Family == "" {
		vs.Family = p.fwmarkFamily(r)
	}
	p.serviceChecks(r)
	switch {
	case vs.Group != "":
		g := p.cfg.Groups[vs.Group]
		if g == nil {
			p.errorf(r.n, "virtual_server_group %s is not defined", vs.Group)
			return false
		}
		svcs, fits := expandGroup(g, vs.Protocol)
		if !fits {
			p.errorf(r.n, "virtual_server_group %s expands to more than %d services", vs.Group, maxGroupServices)
			return false
		}
		p.services += len(svcs)
		if p.services > maxTotalServices {
			p.errorf(r.n, "virtual server groups expand to more than %d services in total", maxTotalServices)
			return false
		}
		vs.Services = svcs
		if vs.Family == "" && len(svcs) > 0 {
			vs.Family = svcs[0].Family
		}
	case vs.FWMark != 0:
		if r.protoSet != nil {
			p.warnf(r.protoSet, "virtual server %s: protocol specified for fwmark - protocol will be ignored", vs.ID())
		}
		vs.Services = []ServiceKey{{Protocol: vs.Protocol, FWMark: vs.FWMark, Family: vs.Family}}
	default:
		vs.Services = []ServiceKey{{Protocol: vs.Protocol, Addr: vs.Addr, Port: vs.Port, Family: vs.Family}}
	}
	if len(r.rss) == 0 {
		p.warnf(r.n, "virtual server %s has no real servers - ignoring", vs.ID())
		return false
	}
	if !r.schedSet {
		p.warnf(r.n, "virtual server %s: no scheduler set, using default 'wlc'", vs.ID())
		vs.Scheduler = "wlc"
	}
	needMethod := !r.methodSet && vs.SorryServer != nil && !r.ssMethod
	for _, rs := range r.rss {
		needMethod = needMethod || !r.methodSet && !rs.methodSet
	}
	if needMethod {
		p.warnf(r.n, "virtual server %s: no forwarding method set, using default NAT", vs.ID())
	}
	if !r.methodSet {
		vs.Method = NAT
	}

	if ss := vs.SorryServer; ss != nil {
		if !r.ssMethod {
			ss.Method, ss.Tunnel = vs.Method, vs.Tunnel
		}
		if ss.Method != TUN && family(ss.Addr) != vs.Family {
			p.d.errorf(ss.Pos, fmt.Sprintf("address family of virtual server and sorry server %s don't match", ss.Addr))
			ok = false
		}
		ss.Port = p.fixPort(r, ss.Pos, ss.Method, ss.Port, "sorry server")
	}

	weightSum := 0
	type rsID struct {
		addr netip.Addr
		port uint16
	}
	seen := make(map[rsID]Pos, len(r.rss))
	for _, rr := range r.rss {
		rs := rr.rs
		if !rr.methodSet {
			rs.Method, rs.Tunnel = vs.Method, vs.Tunnel
		}
		if rs.Method != TUN && family(rs.Addr) != vs.Family {
			p.d.errorf(rs.Pos, fmt.Sprintf("address family of virtual server and real server %s don't match", rs.Addr))
			ok = false
			continue
		}
		rs.Port = p.fixPort(r, rs.Pos, rs.Method, rs.Port, "real server "+rs.Addr.String())
		key := rsID{rs.Addr, rs.Port}
		if prev, dup := seen[key]; dup {
			p.d.errorf(rs.Pos, fmt.Sprintf("real server %s is duplicated (first at %s)", rs.Key(vs), prev))
			ok = false
			continue
		}
		seen[key] = rs.Pos
		rs.Weight = r.weight
		if rr.weight != nil {
			rs.Weight = *rr.weight
		}
		rs.Alpha = vs.Alpha
		if rr.alpha != nil {
			rs.Alpha = *rr.alpha
		}
		rs.InhibitOnFailure = vs.InhibitOnFailure
		if rr.inhibit != nil {
			rs.InhibitOnFailure = *rr.inhibit
		}
		weightSum += rs.Weight
		rs.Checkers = []*Checker{}
		for _, k := range rr.checkers {
			p.resolveChecker(r, rr, k)
			rs.Checkers = append(rs.Checkers, k.c)
		}
		vs.RealServers = append(vs.RealServers, rs)
	}
	if vs.RealServers == nil {
		vs.RealServers = []*RealServer{}
	}
	if vs.Quorum > weightSum {
		p.warnf(r.n, "quorum %d for %s exceeds total weight of real servers %d, reducing quorum to %d", vs.Quorum, vs.ID(), weightSum, weightSum)
		vs.Quorum = weightSum
	}
	if vs.Hysteresis >= vs.Quorum && vs.Hysteresis > 0 {
		h := max(vs.Quorum-1, 0)
		p.warnf(r.n, "virtual server %s: hysteresis %d >= quorum %d; setting hysteresis to %d", vs.ID(), vs.Hysteresis, vs.Quorum, h)
		vs.Hysteresis = h
	}
	return ok
}

// fwmarkFamily is keepalived's rule for a fwmark service without
// ip_family: the family of its untunnelled servers, else of any, else IPv4.
func (p *parser) fwmarkFamily(r *rawVS) string {
	var fams []string
	if ss := r.vs.SorryServer; ss != nil {
		fams = append(fams, family(ss.Addr))
	}
	for _, rr := range r.rss {
		fams = append(fams, family(rr.rs.Addr))
	}
	for _, rr := range r.rss {
		if rr.methodSet && rr.rs.Method == TUN || !rr.methodSet && r.vs.Method == TUN {
			continue
		}
		return family(rr.rs.Addr)
	}
	for _, f := range fams[min(len(fams), 1):] {
		if f != fams[0] {
			return "inet"
		}
	}
	if len(fams) > 0 {
		return fams[0]
	}
	return "inet"
}

// fixPort applies keepalived's port rules to a real or sorry server.
func (p *parser) fixPort(r *rawVS, pos Pos, m Method, port uint16, what string) uint16 {
	vs := r.vs
	if vs.Group != "" {
		return port
	}
	if m == NAT {
		if vs.FWMark == 0 && port == 0 {
			return vs.Port
		}
		return port
	}
	if vs.FWMark != 0 {
		if port != 0 {
			p.d.warnf(pos, fmt.Sprintf("fwmark virtual server %s, %s has port specified - clearing", vs.ID(), what))
		}
		return 0
	}
	if port != 0 && port != vs.Port {
		p.d.warnf(pos, fmt.Sprintf("virtual server %s and %s ports don't match - using %d", vs.ID(), what, vs.Port))
	}
	return vs.Port
}

// resolveChecker fills a checker's inherited values.
func (p *parser) resolveChecker(v *rawVS, r *rawRS, k *rawChecker) {
	c := k.c
	vs, rs := v.vs, r.rs
	c.Alpha = rs.Alpha
	if k.alpha != nil {
		c.Alpha = *k.alpha
	}
	if k.conn {
		if len(k.hosts) > 0 && !k.connectIP && !k.connectPort && !c.BindTo.IsValid() && c.BindPort == 0 &&
			c.BindIf == "" && c.FWMark == 0 && k.t.connectTimeout == nil {
			c.SMTP.HostsOnly = true // smtp_check_end_handler: no connection option set, hosts given
		}
		p.resolveConn(v, r, k)
		for _, h := range k.hosts {
			p.resolveConn(v, r, h)
			c.SMTP.Hosts = append(c.SMTP.Hosts, h.c)
		}
	}
	if !k.timed {
		return
	}
	c.DelayLoop = pick(k.t.delayLoop, r.t.delayLoop, v.t.delayLoop, vs.DelayLoop)
	c.Retry = k.defaultRetry
	if x := firstInt(k.t.retry, r.t.retry, v.t.retry); x != nil {
		c.Retry = *x
	}
	c.Warmup = pick(k.t.warmup, r.t.warmup, v.t.warmup, c.DelayLoop)
	dbr := k.defaultDBR
	if dbr == 0 {
		dbr = c.DelayLoop
	}
	c.DelayBeforeRetry = pick(k.t.delayBeforeRetry, r.t.delayBeforeRetry, v.t.delayBeforeRetry, dbr)
	if c.Misc != nil && c.Misc.Timeout == 0 {
		c.Misc.Timeout = vs.DelayLoop // misc_check_thread: the virtual server's delay_loop, not the checker's
	}
	if h := c.HTTP; h != nil {
		if h.VirtualHost == "" {
			h.VirtualHost = rs.VirtualHost
		}
		if h.VirtualHost == "" {
			h.VirtualHost = vs.VirtualHost
		}
		for _, u := range h.URLs {
			if u.VirtualHost == "" {
				u.VirtualHost = h.VirtualHost
			}
		}
	}
	if c.DNS != nil && c.DNS.Name == "" {
		c.DNS.Name = DefaultDNSName
	}
}

func (p *parser) resolveConn(v *rawVS, r *rawRS, k *rawChecker) {
	c := k.c
	if !k.connectIP {
		c.ConnectIP = r.rs.Addr
	}
	if !k.connectPort {
		// keepalived copies the real server's port into the checker as
		// written, before its port rules clear it (fwmark) or replace it
		// (DR/TUN): the check goes to the written port. A NAT server
		// written without a port is checked on the resolved (VS) port.
		c.ConnectPort = r.port
		if c.ConnectPort == 0 {
			c.ConnectPort = r.rs.Port
		}
	}
	c.ConnectTimeout = pick(k.t.connectTimeout, r.t.connectTimeout, v.t.connectTimeout, DefaultConnectTimeout)
}

// pick returns the first value set, else def.
func pick(a, b, c *time.Duration, def time.Duration) time.Duration {
	for _, x := range []*time.Duration{a, b, c} {
		if x != nil {
			return *x
		}
	}
	return def
}

func firstInt(a ...*int) *int {
	for _, x := range a {
		if x != nil {
			return x
		}
	}
	return nil
}

// serviceChecks applies keepalived's checks of the service definition;
// each corrects the configuration with a warning.
func (p *parser) serviceChecks(r *rawVS) {
	vs := r.vs
	hasAddrs := vs.FWMark == 0 && vs.Group == ""
	hasMarks := vs.FWMark != 0
	zeroPortMember := false
	if g := p.cfg.Groups[vs.Group]; vs.Group != "" && g != nil {
		for _, m := range g.Members {
			if m.First.IsValid() {
				hasAddrs = true
				zeroPortMember = zeroPortMember || m.Port == 0
			} else {
				hasMarks = true
			}
		}
	}
	if vs.Protocol == "" {
		vs.Protocol = TCP // fwmark services: the protocol is not used
	}
	if vs.HASuspend && hasMarks {
		p.warnf(r.n, "virtual server %s: cannot use ha_suspend with fwmarks - clearing ha_suspend", vs.ID())
		vs.HASuspend = false
	}
	if hasAddrs {
		if r.protoSet == nil {
			vs.Protocol = UDP
			p.warnf(r.n, "virtual server %s: no protocol set - defaulting to UDP", vs.ID())
		}
		if vs.OnePacket && vs.Protocol != UDP {
			p.warnf(r.n, "virtual server %s: one packet scheduling requires UDP - resetting", vs.ID())
			vs.OnePacket = false
		}
		if vs.Persistence == 0 && (vs.Group == "" && vs.Port == 0 || zeroPortMember) {
			p.warnf(r.n, "virtual server %s: zero port only valid for persistent services - setting persistence_timeout %d", vs.ID(), int(DefaultPersistenceTimeout.Seconds()))
			vs.Persistence = DefaultPersistenceTimeout
		}
	}
}

// scriptSecurity warns, as keepalived does, when check or notify scripts
// are configured without enable_script_security.
func (p *parser) scriptSecurity() {
	if p.cfg.Global.EnableScriptSecurity {
		return
	}
	warn := func(s *Script) bool {
		if s == nil {
			return false
		}
		p.d.warnf(s.Pos, "scripts are configured but enable_script_security is not set")
		return true
	}
	for _, r := range p.vss {
		if warn(r.vs.QuorumUp) || warn(r.vs.QuorumDown) {
			return
		}
		for _, rr := range r.rss {
			if warn(rr.rs.NotifyUp) || warn(rr.rs.NotifyDown) {
				return
			}
			for _, k := range rr.checkers {
				if k.c.Misc != nil && warn(k.c.Misc.Path) {
					return
				}
			}
		}
	}
}
