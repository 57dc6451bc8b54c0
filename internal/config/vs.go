package config

import (
	"strings"
	"time"
)

// timers are the inheritable settings of a virtual server, real server or
// checker; nil means "not set here".
type timers struct {
	connectTimeout   *time.Duration
	retry            *int
	delayBeforeRetry *time.Duration
	warmup           *time.Duration
	delayLoop        *time.Duration
}

// rawVS is a virtual server while it is being parsed.
type rawVS struct {
	n         *node
	vs        *VirtualServer
	t         timers
	weight    int
	methodSet bool
	schedSet  bool
	protoSet  *node // the protocol line, if any
	rss       []*rawRS
	ssMethod  bool
}

// rawRS is a real server while it is being parsed.
type rawRS struct {
	n         *node
	rs        *RealServer
	t         timers
	weight    *int
	alpha     *bool
	inhibit   *bool
	methodSet bool
	port      uint16 // the port as written, before keepalived's port rules
	checkers  []*rawChecker
}

var schedulers = map[string]bool{"rr": true, "wrr": true, "lc": true, "wlc": true, "lblc": true, "sh": true,
	"mh": true, "dh": true, "fo": true, "ovf": true, "lblcr": true, "sed": true, "nq": true, "twos": true}

func (p *parser) virtualServer(b *node) {
	vs := &VirtualServer{Pos: b.pos, DelayLoop: DefaultDelayLoop, Quorum: DefaultQuorum}
	r := &rawVS{n: b, vs: vs, weight: DefaultWeight}
	switch b.arg(1) {
	case "fwmark":
		if !p.need(b, 2) {
			return
		}
		v, err := parseUint(b.arg(2), 1, 1<<32-1)
		if err != nil {
			p.errorf(b, "invalid virtual server fwmark: %v", err)
			return
		}
		vs.FWMark = uint32(v)
	case "group":
		if !p.need(b, 2) {
			return
		}
		vs.Group = b.arg(2)
	default:
		a, err := parseAddr(b.arg(1))
		if err != nil {
			p.errorf(b, "invalid virtual server: %v", err)
			return
		}
		port, err := parsePort(b.arg(2))
		if err != nil {
			p.errorf(b, "invalid virtual server: %v", err)
			return
		}
		vs.Addr, vs.Port, vs.Family = a, port, family(a)
	}
	for _, n := range b.children {
		p.vsKeyword(r, n)
	}
	p.vss = append(p.vss, r)
}

func (p *parser) vsKeyword(r *rawVS, n *node) {
	vs := r.vs
	kw := n.keyword()
	if kw != "real_server" {
		p.noBlock(n)
	}
	if p.timerKeyword(&r.t, n, 1) {
		return
	}
	switch kw {
	case "ip_family":
		if !p.need(n, 1) {
			return
		}
		f := n.arg(1)
		if f != "inet" && f != "inet6" {
			p.errorf(n, "unknown address family %s", f)
			return
		}
		if vs.Family != "" && vs.Family != f {
			p.errorf(n, "virtual server family %s conflicts with server family", f)
			return
		}
		vs.Family = f
	case "inhibit_on_failure":
		vs.InhibitOnFailure = true
	case "lb_algo", "lvs_sched":
		if !p.need(n, 1) {
			return
		}
		if !schedulers[n.arg(1)] {
			p.errorf(n, "invalid lvs_scheduler '%s'", n.arg(1))
			return
		}
		// A copy: a word is a substring of the whole file's text, and one
		// kept for the daemon's life keeps all of it (0.9 MB at 10,000
		// real servers).
		vs.Scheduler, r.schedSet = strings.Clone(n.arg(1)), true
	case "ops":
		vs.OnePacket = true
	case "hashed":
		p.warnf(n, "hashed is obsolete and has no effect")
	case "flag-1", "flag-2", "flag-3":
		vs.SchedFlags = appendOnce(vs.SchedFlags, kw)
	case "sh-port", "sh-fallback", "mh-port", "mh-fallback":
		if vs.Scheduler != kw[:2] {
			p.errorf(n, "%s only applies to the %s scheduler (set lvs_sched %s before it)", kw, kw[:2], kw[:2])
			return
		}
		vs.SchedFlags = appendOnce(vs.SchedFlags, kw)
	case "lb_kind", "lvs_method":
		if m, t, ok := p.method(n, "virtual"); ok {
			vs.Method, vs.Tunnel, r.methodSet = m, t, true
		}
	case "persistence_engine":
		if p.need(n, 1) {
			vs.PersistEngine = n.arg(1)
		}
	case "persistence_timeout":
		if len(n.words) < 2 {
			vs.Persistence = DefaultPersistenceTimeout
			return
		}
		v, err := parseUint(n.arg(1), 1, lvsMaxTimeout)
		if err != nil {
			p.errorf(n, "invalid persistence_timeout: %v", err)
			return
		}
		vs.Persistence = time.Duration(v) * time.Second
	case "persistence_granularity":
		p.granularity(r, n)
	case "protocol":
		if !p.need(n, 1) {
			return
		}
		r.protoSet = n
		switch strings.ToUpper(n.arg(1)) {
		case "TCP":
			vs.Protocol = TCP
		case "UDP":
			vs.Protocol = UDP
		case "SCTP":
			vs.Protocol = SCTP
		default:
			p.errorf(n, "unknown protocol %s", n.arg(1))
		}
	case "ha_suspend":
		vs.HASuspend = true
	case "smtp_alert":
		p.optBool(n)
	case "virtualhost":
		if p.need(n, 1) {
			vs.VirtualHost = n.arg(1)
		}
	case "snmp_name":
		if len(n.words) != 2 {
			p.errorf(n, "virtual server snmp_name missing or extra parameters")
		}
	case "alpha":
		vs.Alpha = true
	case "omega":
		vs.Omega = true
	case "quorum_up", "quorum_down":
		dst := &vs.QuorumUp
		if kw == "quorum_down" {
			dst = &vs.QuorumDown
		}
		if *dst != nil {
			p.errorf(n, "%s script already specified", kw)
			return
		}
		*dst = p.script(n)
	case "quorum":
		v, err := parseUint(n.arg(1), 1, 1<<32-1)
		if err != nil {
			p.errorf(n, "quorum: %v", err)
			return
		}
		vs.Quorum = int(v)
	case "hysteresis":
		v, err := parseUint(n.arg(1), 0, 1<<32-1)
		if err != nil {
			p.errorf(n, "hysteresis: %v", err)
			return
		}
		vs.Hysteresis = int(v)
	case "weight":
		v, err := parseUint(n.arg(1), 1, ipvsWeightLimit)
		if err != nil {
			p.errorf(n, "virtual server weight: %v", err)
			return
		}
		r.weight = int(v)
	case "sorry_server":
		if !p.need(n, 1) {
			return
		}
		a, err := parseAddr(n.arg(1))
		if err != nil {
			p.errorf(n, "invalid sorry_server: %v", err)
			return
		}
		port, err := parsePort(n.arg(2))
		if err != nil {
			p.errorf(n, "invalid sorry_server: %v", err)
			return
		}
		vs.SorryServer = &SorryServer{Pos: n.pos, Addr: a, Port: port}
	case "sorry_server_inhibit":
		if vs.SorryServer == nil {
			p.errorf(n, "sorry_server_inhibit used before or without sorry_server")
			return
		}
		vs.SorryServerInhibit = true
	case "sorry_server_lvs_method":
		if vs.SorryServer == nil {
			p.errorf(n, "sorry_server_lvs_method used before or without sorry_server")
			return
		}
		if m, t, ok := p.method(n, "sorry"); ok {
			vs.SorryServer.Method, vs.SorryServer.Tunnel, r.ssMethod = m, t, true
		}
	case "real_server":
		if p.need(n, 1) && p.wantBlock(n) {
			p.realServer(r, n)
		}
	default:
		p.unknown(n)
	}
}

// timerKeyword handles the keywords inherited by real servers and checkers;
// minRetry is 1 for virtual and real servers and 0 for checkers.
func (p *parser) timerKeyword(t *timers, n *node, minRetry uint64) bool {
	kw := n.keyword()
	var dst **time.Duration
	lo := time.Duration(0)
	var hi time.Duration
	switch kw {
	case "retry":
		if !p.need(n, 1) {
			return true
		}
		v, err := parseUint(n.arg(1), minRetry, 1<<32-1)
		if err != nil {
			p.errorf(n, "retry: %v", err)
			return true
		}
		i := int(v)
		t.retry = &i
		return true
	case "connect_timeout":
		dst, lo, hi = &t.connectTimeout, time.Microsecond, timerMaxMicros*time.Microsecond
	case "delay_loop":
		dst, lo = &t.delayLoop, time.Microsecond
	case "delay_before_retry":
		dst = &t.delayBeforeRetry
	case "warmup":
		dst = &t.warmup
	default:
		return false
	}
	if !p.need(n, 1) {
		return true
	}
	d, err := parseTimer(n.arg(1), lo, hi)
	if err != nil {
		p.errorf(n, "%s: %v", kw, err)
		return true
	}
	*dst = &d
	return true
}

// method reads `lvs_method NAT|DR|TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]`.
func (p *parser) method(n *node, who string) (Method, *Tunnel, bool) {
	if !p.need(n, 1) {
		return "", nil, false
	}
	var m Method
	switch n.arg(1) {
	case "NAT":
		m = NAT
	case "DR":
		m = DR
	case "TUN":
		m = TUN
	default:
		p.errorf(n, "unknown [%s] routing method for %s server", n.arg(1), who)
		return "", nil, false
	}
	t := &Tunnel{Type: "ipip", Checksum: "nocsum"}
	for i := 2; i < len(n.words); i++ {
		switch w := n.words[i]; w {
		case "type":
			if i+1 >= len(n.words) {
				p.errorf(n, "missing tunnel type for %s server", who)
				return "", nil, false
			}
			switch n.words[i+1] {
			case "ipip", "gue", "gre":
				t.Type = n.words[i+1]
			default:
				p.errorf(n, "unknown tunnel type %s for %s server", n.words[i+1], who)
				return "", nil, false
			}
			i++
		case "port":
			if i+1 >= len(n.words) {
				p.errorf(n, "missing port for %s server gue tunnel", who)
				return "", nil, false
			}
			v, err := parseUint(n.words[i+1], 1, 65535)
			if err != nil {
				p.errorf(n, "invalid gue tunnel port %s for %s server", n.words[i+1], who)
				return "", nil, false
			}
			t.Port = uint16(v)
			i++
		case "nocsum", "csum", "remcsum":
			t.Checksum = w
		default:
			p.errorf(n, "invalid tunnel option %s for %s server", w, who)
			return "", nil, false
		}
	}
	if (t.Type == "gue") != (t.Port != 0) {
		p.errorf(n, "gue tunnels require port, otherwise cannot have port")
		return "", nil, false
	}
	if t.Type == "ipip" && t.Checksum != "nocsum" {
		p.errorf(n, "ipip tunnels do not support checksum option")
		return "", nil, false
	}
	if t.Type == "gre" && t.Checksum == "remcsum" {
		p.errorf(n, "gre tunnels do not support remote checksum option")
		return "", nil, false
	}
	if m != TUN {
		if len(n.words) > 2 {
			p.warnf(n, "tunnel options have no effect with the %s method", m)
		}
		t = nil
	}
	return m, t, true
}

func (p *parser) granularity(r *rawVS, n *node) {
	if !p.need(n, 1) {
		return
	}
	s := n.arg(1)
	vs := r.vs
	f := "inet"
	if !strings.Contains(s, ".") {
		v, err := parseUint(s, 1, 128)
		if err != nil {
			p.errorf(n, "invalid IPv6 persistence_granularity %s", s)
			return
		}
		f = "inet6"
		vs.PersistMask = prefixMask(int(v))
	} else {
		a, err := parseAddr(s)
		if err != nil || !a.Is4() {
			p.errorf(n, "invalid IPv4 persistence_granularity %s", s)
			return
		}
		vs.PersistMask = a
	}
	if vs.Family == "" {
		vs.Family = f
	}
	if vs.Persistence == 0 {
		vs.Persistence = DefaultPersistenceTimeout
	}
}

func (p *parser) optBool(n *node) (bool, bool) {
	if len(n.words) < 2 {
		return true, true
	}
	v, err := parseBool(n.arg(1))
	if err != nil {
		p.errorf(n, "%s: %v", n.keyword(), err)
		return false, false
	}
	return v, true
}

// script reads a notify or quorum script: the first word (quotes and
// escapes honoured) is the command line, which is split into argv by the
// same quoting rules a second time, as keepalived's notify_script_init
// does (`notify_up "/bin/n 'a b'"` runs /bin/n with the one argument
// "a b"); optional user and group follow.
func (p *parser) script(n *node) *Script {
	words, err := tokenizeEscaped(n.raw)
	if err != nil {
		p.errorf(n, "%s: %v", n.keyword(), err)
		return nil
	}
	if len(words) < 2 || strings.TrimSpace(words[1]) == "" {
		p.errorf(n, "%s: missing script", n.keyword())
		return nil
	}
	args, err := tokenizeEscaped(words[1])
	if err != nil {
		p.errorf(n, "%s: %v", n.keyword(), err)
		return nil
	}
	if len(args) == 0 {
		p.errorf(n, "%s: missing script", n.keyword())
		return nil
	}
	s := &Script{Pos: n.pos, Args: args}
	if len(words) > 2 {
		s.User = words[2]
	}
	if len(words) > 3 {
		s.Group = words[3]
	}
	return s
}

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
