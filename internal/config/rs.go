package config

func (p *parser) realServer(v *rawVS, b *node) {
	a, err := parseAddr(b.arg(1))
	if err != nil {
		p.errorf(b, "invalid real server: %v", err)
		return
	}
	port, err := parsePort(b.arg(2))
	if err != nil {
		p.errorf(b, "invalid real server: %v", err)
		return
	}
	rs := &RealServer{Pos: b.pos, Addr: a, Port: port}
	r := &rawRS{n: b, rs: rs, port: port}
	for _, n := range b.children {
		p.rsKeyword(v, r, n)
	}
	v.rss = append(v.rss, r)
}

func (p *parser) rsKeyword(v *rawVS, r *rawRS, n *node) {
	rs := r.rs
	kw := n.keyword()
	if ct, ok := checkerTypes[kw]; ok {
		if p.wantBlock(n) {
			if c := p.checker(r, ct, n); c != nil {
				r.checkers = append(r.checkers, c)
			}
		}
		return
	}
	if n.hasBlock {
		p.errorf(n, "unknown checker block '%s'", kw)
		return
	}
	if p.timerKeyword(&r.t, n, 1) {
		return
	}
	switch kw {
	case "weight":
		x, err := parseUint(n.arg(1), 0, ipvsWeightLimit)
		if err != nil {
			p.errorf(n, "real server weight: %v", err)
			return
		}
		w := int(x)
		r.weight = &w
	case "lvs_method":
		if m, t, ok := p.method(n, "real"); ok {
			rs.Method, rs.Tunnel, r.methodSet = m, t, true
		}
	case "uthreshold", "lthreshold":
		x, err := parseUint(n.arg(1), 0, 1<<32-1)
		if err != nil {
			p.errorf(n, "invalid real_server %s: %v", kw, err)
			return
		}
		if kw == "uthreshold" {
			rs.UpperThreshold = uint32(x)
		} else {
			rs.LowerThreshold = uint32(x)
		}
	case "inhibit_on_failure", "alpha":
		b, ok := p.optBool(n)
		if !ok {
			return
		}
		if kw == "alpha" {
			r.alpha = &b
		} else {
			r.inhibit = &b
		}
	case "notify_up", "notify_down":
		dst := &rs.NotifyUp
		if kw == "notify_down" {
			dst = &rs.NotifyDown
		}
		if *dst != nil {
			p.errorf(n, "%s script already specified", kw)
			return
		}
		*dst = p.script(n)
	case "smtp_alert":
		p.optBool(n)
	case "virtualhost":
		if p.need(n, 1) {
			rs.VirtualHost = n.arg(1)
		}
	case "snmp_name":
		if len(n.words) != 2 {
			p.errorf(n, "real server snmp_name missing or extra parameters")
		}
	default:
		p.unknown(n)
	}
	_ = v
}
