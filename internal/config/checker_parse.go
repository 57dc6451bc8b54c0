package config

import (
	"strings"
	"time"
)

// rawChecker is a checker while it is being parsed.
type rawChecker struct {
	n            *node
	c            *Checker
	t            timers
	alpha        *bool
	connectIP    bool // connect_ip given
	connectPort  bool // connect_port given
	conn         bool // has connection options (not MISC, FILE, BFD)
	timed        bool // has retry/delay timers (not FILE, BFD)
	defaultRetry int
	defaultDBR   time.Duration // 0: delay_loop
	hosts        []*rawChecker // SMTP_CHECK host { } blocks
	fileWeight   bool          // FILE_CHECK has its own weight line
}

var checkerTypes = map[string]CheckerType{
	"TCP_CHECK": TCPCheck, "HTTP_GET": HTTPGet, "SSL_GET": SSLGet, "MISC_CHECK": MiscCheck,
	"SMTP_CHECK": SMTPCheck, "DNS_CHECK": DNSCheck, "UDP_CHECK": UDPCheck, "PING_CHECK": PingCheck,
	"FILE_CHECK": FileCheck, "BFD_CHECK": BFDCheck,
}

// dnsTypes are the query types DNS_CHECK knows.
var dnsTypes = map[string]bool{"A": true, "NS": true, "CNAME": true, "SOA": true, "MX": true, "TXT": true, "AAAA": true,
	"RRSIG": true, "DNSKEY": true}

func (p *parser) checker(r *rawRS, ct CheckerType, b *node) *rawChecker {
	c := &Checker{Pos: b.pos, Type: ct}
	k := &rawChecker{n: b, c: c, conn: true, timed: true, defaultRetry: DefaultRetry, defaultDBR: DefaultDelayBeforeRetry}
	switch ct {
	case HTTPGet, SSLGet:
		k.defaultDBR = DefaultHTTPDelayBeforeRetry
		c.HTTP = &HTTPOptions{Protocol: "1.0"}
	case MiscCheck:
		k.conn, k.defaultRetry = false, DefaultMiscRetry
		c.Misc = &MiscOptions{}
	case SMTPCheck:
		c.SMTP = &SMTPOptions{HeloName: DefaultSMTPHeloName}
	case DNSCheck:
		k.defaultRetry, k.defaultDBR = DefaultDNSRetry, 0
		c.DNS = &DNSOptions{Type: DefaultDNSType}
	case UDPCheck:
		c.UDP = &UDPOptions{MaxReplyLen: 255}
	case FileCheck:
		k.conn, k.timed = false, false
		c.File = &FileOptions{}
	case BFDCheck:
		k.conn, k.timed = false, false
		c.BFD = &BFDOptions{}
	}
	urlSeen := false
	for _, n := range b.children {
		kw := n.keyword()
		if kw != "url" && kw != "host" {
			p.noBlock(n)
		}
		if k.conn && p.connKeyword(k, n) {
			continue
		}
		if k.timed && (kw == "retry" || kw == "delay_before_retry" || kw == "warmup" || kw == "delay_loop") {
			p.timerKeyword(&k.t, n, 0)
			continue
		}
		if kw == "alpha" && ct != FileCheck {
			if v, ok := p.optBool(n); ok {
				k.alpha = &v
			}
			continue
		}
		if kw == "log_all_failures" && k.timed {
			if v, ok := p.optBool(n); ok {
				c.LogAllFailures = v
			}
			continue
		}
		switch ct {
		case HTTPGet, SSLGet:
			if kw == "url" {
				urlSeen = true
			}
			p.httpKeyword(k, n)
		case MiscCheck:
			p.miscKeyword(k, n)
		case SMTPCheck:
			p.smtpKeyword(k, n)
		case DNSCheck:
			p.dnsKeyword(k, n)
		case UDPCheck:
			p.udpKeyword(k, n)
		case FileCheck:
			p.fileKeyword(k, n)
		case BFDCheck:
			p.bfdKeyword(k, n)
		default:
			p.unknown(n)
		}
	}
	// end-of-block checks, as keepalived's end handlers
	switch ct {
	case HTTPGet, SSLGet:
		if !urlSeen || len(c.HTTP.URLs) == 0 {
			p.errorf(b, "%s checker has no url", ct)
			return nil
		}
	case MiscCheck:
		if c.Misc.Path == nil {
			p.errorf(b, "MISC_CHECK has no misc_path")
			return nil
		}
	case FileCheck:
		if c.File.TrackFile == "" {
			p.errorf(b, "FILE_CHECK has no track_file")
			return nil
		}
	case BFDCheck:
		if len(c.BFD.Names) == 0 {
			p.errorf(b, "BFD_CHECK has no name")
			return nil
		}
	case UDPCheck:
		if c.UDP.MinReplyLen > c.UDP.MaxReplyLen {
			p.errorf(b, "UDP_CHECK min_reply_length %d > max_reply_length %d - will always fail", c.UDP.MinReplyLen, c.UDP.MaxReplyLen)
		}
	}
	if k.conn && c.ConnectIP.IsValid() && c.ConnectIP.Is6() && c.ConnectIP.IsLinkLocalUnicast() && c.BindIf == "" {
		p.errorf(b, "checker link local address %s requires a bind_if", c.ConnectIP)
		return nil
	}
	_ = r
	return k
}

// connKeyword handles the connection options; it reports whether n was one.
func (p *parser) connKeyword(k *rawChecker, n *node) bool {
	c := k.c
	kw := n.keyword()
	switch kw {
	case "connect_ip", "bindto":
		if !p.need(n, 1) {
			return true
		}
		a, err := parseAddr(n.arg(1))
		if err != nil {
			p.errorf(n, "invalid %s address: %v", kw, err)
			return true
		}
		if kw == "connect_ip" {
			if c.BindTo.IsValid() && c.BindTo.Is4() != a.Is4() {
				p.errorf(n, "connect_ip address %s does not match address family of bindto", a)
				return true
			}
			c.ConnectIP, k.connectIP = a, true
		} else {
			if c.ConnectIP.IsValid() && c.ConnectIP.Is4() != a.Is4() {
				p.errorf(n, "bindto address %s does not match address family of connect_ip", a)
				return true
			}
			c.BindTo = a
		}
	case "connect_port", "bind_port":
		v, err := parseUint(n.arg(1), 1, 65535)
		if err != nil {
			p.errorf(n, "invalid checker %s: %v", kw, err)
			return true
		}
		if kw == "connect_port" {
			c.ConnectPort, k.connectPort = uint16(v), true
		} else {
			c.BindPort = uint16(v)
		}
	case "bind_if":
		if !p.need(n, 1) {
			return true
		}
		if len(n.arg(1)) > 15 {
			p.errorf(n, "interface name %s is too long", n.arg(1))
			return true
		}
		c.BindIf = n.arg(1)
	case "fwmark":
		v, err := parseUint(n.arg(1), 0, 1<<32-1)
		if err != nil {
			p.errorf(n, "invalid fwmark connection value: %v", err)
			return true
		}
		c.FWMark = uint32(v)
	case "connect_timeout":
		p.timerKeyword(&k.t, n, 0)
	default:
		return false
	}
	return true
}

func (p *parser) httpKeyword(k *rawChecker, n *node) {
	h := k.c.HTTP
	switch kw := n.keyword(); kw {
	case "nb_get_retry":
		p.warnf(n, "nb_get_retry is deprecated - please use 'retry'")
		v, err := parseUint(n.arg(1), 0, 1<<32-1)
		if err != nil {
			p.errorf(n, "nb_get_retry: %v", err)
			return
		}
		i := int(v)
		k.t.retry = &i
	case "virtualhost":
		if p.need(n, 1) {
			h.VirtualHost = n.arg(1)
		}
	case "http_protocol":
		if !p.need(n, 1) {
			return
		}
		switch v := n.arg(1); v {
		case "1.0", "1.1":
			h.Protocol = v
		case "1.0C", "1.0c":
			h.Protocol = "1.0C"
		default:
			p.errorf(n, "invalid http_protocol version %s", v)
		}
	case "enable_sni", "fast_recovery", "tls_compliant":
		if kw == "tls_compliant" {
			p.newerKeyword(n)
		}
		v, ok := p.optBool(n)
		if !ok {
			return
		}
		switch kw {
		case "enable_sni":
			h.EnableSNI = v
		case "fast_recovery":
			h.FastRecovery = v
		default:
			h.TLSCompliant = v
		}
	case "sni_name":
		p.newerKeyword(n)
		if p.need(n, 1) {
			h.SNIName = n.arg(1)
		}
	case "url":
		if p.wantBlock(n) {
			if u := p.url(n); u != nil {
				h.URLs = append(h.URLs, u)
			}
		}
	default:
		p.unknown(n)
	}
}

func (p *parser) url(b *node) *URL {
	u := &URL{Pos: b.pos}
	pathSet := false
	for _, n := range b.children {
		p.noBlock(n)
		switch kw := n.keyword(); kw {
		case "path":
			if p.need(n, 1) {
				u.Path, pathSet = n.arg(1), true
			}
		case "digest":
			if !p.need(n, 1) {
				continue
			}
			dg := strings.ToLower(n.arg(1))
			if u.Digest != "" {
				p.errorf(n, "digest '%s' is a duplicate", dg)
				continue
			}
			if len(dg) != 32 {
				p.errorf(n, "digest '%s' character length should be 32 rather than %d", dg, len(dg))
				continue
			}
			if _, _, err := parseHex(dg, false); err != nil {
				p.errorf(n, "digest '%s' is not hexadecimal", dg)
				continue
			}
			u.Digest = dg
		case "status_code":
			for _, w := range n.words[1:] {
				lo, hi, ok := parseStatusRange(w)
				if !ok {
					p.errorf(n, "invalid HTTP_GET status code '%s'", w)
					continue
				}
				u.StatusCodes = append(u.StatusCodes, StatusRange{Low: lo, High: hi})
			}
		case "virtualhost":
			if p.need(n, 1) {
				u.VirtualHost = n.arg(1)
			}
		case "regex":
			words, err := tokenizeEscaped(n.raw)
			if err != nil || len(words) != 2 {
				p.errorf(n, "regex missing or too many fields")
				continue
			}
			u.Regex = words[1]
		case "regex_no_match":
			u.RegexNoMatch = true
		case "regex_options":
			u.RegexOptions = append(u.RegexOptions, n.words[1:]...)
		case "regex_min_offset", "regex_max_offset":
			v, err := parseUint(n.arg(1), 0, 1<<31-1)
			if err != nil || len(n.words) != 2 {
				p.errorf(n, "invalid %s", kw)
				continue
			}
			if kw == "regex_min_offset" {
				u.RegexMinOffset = int(v)
			} else {
				u.RegexMaxOffset = int(v)
			}
		case "regex_stack":
			if len(n.words) != 3 {
				p.errorf(n, "regex_stack requires start and max values")
			}
		default:
			p.unknown(n)
		}
	}
	if !pathSet {
		p.errorf(b, "url has no path")
		return nil
	}
	if len(u.StatusCodes) == 0 {
		u.StatusCodes = []StatusRange{{Low: DefaultStatusCodeLow, High: DefaultStatusCodeHigh}}
	}
	if u.Regex == "" && (len(u.RegexOptions) > 0 || u.RegexNoMatch || u.RegexMinOffset > 0 || u.RegexMaxOffset > 0) {
		p.warnf(b, "regex parameters specified without regex - ignored")
		u.RegexOptions, u.RegexNoMatch, u.RegexMinOffset, u.RegexMaxOffset = nil, false, 0, 0
	}
	if u.RegexMaxOffset > 0 && u.RegexMinOffset > u.RegexMaxOffset {
		p.warnf(b, "regex_min_offset %d > regex_max_offset %d - ignored", u.RegexMinOffset, u.RegexMaxOffset)
		u.RegexMinOffset, u.RegexMaxOffset = 0, 0
	}
	return u
}

// parseStatusRange reads "200" or "200-299" within 100-599.
func parseStatusRange(s string) (int, int, bool) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err1 := parseUint(a, 100, 599)
	hi := lo
	var err2 error
	if isRange {
		hi, err2 = parseUint(b, 100, 599)
	}
	if err1 != nil || err2 != nil || lo > hi {
		return 0, 0, false
	}
	return int(lo), int(hi), true
}

func (p *parser) miscKeyword(k *rawChecker, n *node) {
	m := k.c.Misc
	switch n.keyword() {
	case "misc_path":
		// keepalived (set_script_params_array) takes the first word of the
		// line, quotes and escapes honoured, and splits it into argv by the
		// same rules again; the rest of the line is dropped without a word.
		words, err := tokenizeEscaped(n.raw)
		if err != nil {
			p.errorf(n, "misc_path: %v", err)
			return
		}
		if len(words) > 2 {
			p.errorf(n, "misc_path: keepalived runs only %q and drops the rest of the line; quote the whole command line", words[1])
			return
		}
		var args []string
		if len(words) == 2 {
			if args, err = tokenizeEscaped(words[1]); err != nil {
				p.errorf(n, "misc_path: %v", err)
				return
			}
		}
		if len(args) == 0 {
			p.errorf(n, "misc_path: missing script")
			return
		}
		user, group := "", ""
		if m.Path != nil {
			user, group = m.Path.User, m.Path.Group
		}
		m.Path = &Script{Pos: n.pos, Args: args, User: user, Group: group}
	case "misc_timeout":
		v, err := parseUint(n.arg(1), 0, (1<<32-1)/1000000)
		if err != nil {
			p.errorf(n, "invalid misc_timeout: %v", err)
			return
		}
		m.Timeout = time.Duration(v) * time.Second
	case "misc_dynamic":
		m.Dynamic = true
	case "user":
		if !p.need(n, 1) {
			return
		}
		if m.Path == nil {
			m.Path = &Script{Pos: n.pos}
		}
		m.Path.User, m.Path.Group = n.arg(1), n.arg(2)
	default:
		p.unknown(n)
	}
}

func (p *parser) smtpKeyword(k *rawChecker, n *node) {
	switch n.keyword() {
	case "helo_name":
		if p.need(n, 1) {
			k.c.SMTP.HeloName = n.arg(1)
		}
	case "host":
		if !p.wantBlock(n) {
			return
		}
		h := &rawChecker{n: n, c: &Checker{Pos: n.pos, Type: SMTPCheck}, conn: true}
		for _, c := range n.children {
			p.noBlock(c)
			if !p.connKeyword(h, c) {
				p.unknown(c)
			}
		}
		k.hosts = append(k.hosts, h)
	default:
		p.unknown(n)
	}
}

func (p *parser) dnsKeyword(k *rawChecker, n *node) {
	d := k.c.DNS
	switch n.keyword() {
	case "type":
		if !p.need(n, 1) {
			return
		}
		t := strings.ToUpper(n.arg(1))
		if !dnsTypes[t] {
			p.errorf(n, "unknown DNS check type %s", n.arg(1))
			return
		}
		d.Type = t
	case "name":
		if !p.need(n, 1) {
			return
		}
		name := n.arg(1)
		if d.Name != "" {
			p.errorf(n, "DNS_CHECK name already specified")
			return
		}
		if name[0] == '.' && len(name) > 1 || strings.Contains(name, "..") {
			p.errorf(n, "DNS_CHECK name '%s' has empty label", name)
			return
		}
		d.Name = name
	default:
		p.unknown(n)
	}
}

func (p *parser) udpKeyword(k *rawChecker, n *node) {
	u := k.c.UDP
	switch kw := n.keyword(); kw {
	case "payload":
		if !p.need(n, 1) {
			return
		}
		data, _, err := parseHex(strings.Join(n.words[1:], ""), false)
		if err != nil {
			p.errorf(n, "invalid hex string for UDP_CHECK payload")
			return
		}
		u.Payload = data
	case "require_reply":
		u.RequireReply = true
		if len(n.words) == 1 {
			return
		}
		data, mask, err := parseHex(strings.Join(n.words[1:], ""), true)
		if err != nil {
			p.errorf(n, "invalid hex string for UDP_CHECK reply")
			return
		}
		u.Reply, u.ReplyMask = data, mask
	case "min_reply_length", "max_reply_length":
		v, err := parseUint(n.arg(1), 0, 65535)
		if err != nil {
			p.errorf(n, "UDP_CHECK %s: %v", kw, err)
			return
		}
		if kw == "min_reply_length" {
			u.MinReplyLen = int(v)
		} else {
			u.MaxReplyLen = int(v)
		}
	default:
		p.unknown(n)
	}
}

func (p *parser) fileKeyword(k *rawChecker, n *node) {
	f := k.c.File
	switch n.keyword() {
	case "track_file":
		if !p.need(n, 1) {
			return
		}
		if !p.trackFiles[n.arg(1)] {
			p.errorf(n, "track_file %s not found", n.arg(1))
			return
		}
		f.TrackFile = n.arg(1)
		if d, ok := p.trackFileDefs[f.TrackFile]; ok {
			f.Path = d.path
			if !k.fileWeight {
				f.Weight, f.Reverse = d.weight, d.reverse
			}
		}
	case "weight":
		v, err := parseInt(n.arg(1), -ipvsWeightLimit, ipvsWeightLimit)
		if err != nil {
			p.errorf(n, "weight for track file: %v", err)
			return
		}
		rev := false
		switch n.arg(2) {
		case "", "noreverse":
		case "reverse":
			rev = true
		default:
			p.errorf(n, "unknown track file weight option %s", n.arg(2))
			return
		}
		f.Weight, f.Reverse = int(v), rev
		k.fileWeight = true
	default:
		p.unknown(n)
	}
}

func (p *parser) bfdKeyword(k *rawChecker, n *node) {
	switch n.keyword() {
	case "name":
		if len(n.words) != 2 {
			p.errorf(n, "BFD_CHECK - no or too many names specified")
			return
		}
		if !p.bfds[n.arg(1)] {
			p.errorf(n, "BFD_CHECK - BFD %s not configured", n.arg(1))
			return
		}
		if len(k.c.BFD.Names) > 0 {
			p.errorf(n, "BFD_CHECK - BFD already specified as %s", k.c.BFD.Names[0])
			return
		}
		k.c.BFD.Names = append(k.c.BFD.Names, n.arg(1))
	default:
		p.unknown(n)
	}
}

// newerKeyword warns about a keyword lvsprobe reads that keepalived 2.2.7
// does not know (it came in a later release).
func (p *parser) newerKeyword(n *node) {
	p.warnf(n, "%s is not known to keepalived 2.2.7 (added in a later release)", n.keyword())
}
