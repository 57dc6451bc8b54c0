package config

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// parser turns the statement tree into a Config.
type parser struct {
	d             *diags
	log           *slog.Logger
	cfg           *Config
	vss           []*rawVS
	trackFiles    map[string]bool         // track_file / vrrp_track_file names, for FILE_CHECK
	trackFileDefs map[string]trackFileDef // their file and weight (trackfile.go)
	bfds          map[string]bool         // bfd_instance names, for BFD_CHECK
	sslSeen       bool
	services      int // services expanded from groups so far
}

func (p *parser) errorf(n *node, format string, a ...any) {
	p.d.errorf(n.pos, fmt.Sprintf(format, a...))
}

func (p *parser) warnf(n *node, format string, a ...any) {
	p.d.warnf(n.pos, fmt.Sprintf(format, a...))
}

// need reports an error and returns false when n has fewer than k words
// after its keyword (keepalived exits on a missing parameter).
func (p *parser) need(n *node, k int) bool {
	if len(n.words) <= k {
		p.errorf(n, "%s: missing parameter", n.keyword())
		return false
	}
	return true
}

// noBlock reports a block after a keyword that takes none.
func (p *parser) noBlock(n *node) {
	if n.hasBlock {
		p.errorf(n, "unexpected '{' after %s", n.keyword())
	}
}

// wantBlock reports a block keyword without its block.
func (p *parser) wantBlock(n *node) bool {
	if !n.hasBlock {
		p.errorf(n, "%s: missing '{'", n.keyword())
		return false
	}
	return true
}

// Top-level keywords of keepalived that belong to other subsystems. They
// are skipped with one informational log line each.
var otherRoots = map[string]bool{
	"net_namespace": true, "net_namespace_ipvs": true, "namespace_with_ipsets": true,
	"use_pid_dir": true, "instance": true, "child_wait_time": true, "linkbeat_use_polling": true,
	"bfd_instance": true, "garp_group": true, "linkbeat_interfaces": true,
	"static_ipaddress": true, "static_routes": true, "static_rules": true,
}

var skipPrefixes = []string{"vrrp_", "static_", "track_", "bfd_", "garp_", "linkbeat_"}

func (p *parser) top(nodes []*node) {
	for _, n := range nodes {
		switch kw := n.keyword(); kw {
		case "global_defs":
			if p.wantBlock(n) {
				p.global(n)
			}
		case "SSL":
			if p.wantBlock(n) {
				p.ssl(n)
			}
		case "virtual_server_group":
			if p.need(n, 1) && p.wantBlock(n) {
				p.group(n)
			}
		case "virtual_server":
			if p.need(n, 1) && p.wantBlock(n) {
				p.virtualServer(n)
			}
		default:
			skip := otherRoots[kw]
			for _, pre := range skipPrefixes {
				skip = skip || strings.HasPrefix(kw, pre)
			}
			if !skip {
				p.unknown(n)
				continue
			}
			switch kw {
			case "track_file", "vrrp_track_file":
				p.trackFiles[n.arg(1)] = true
				p.trackFile(n)
			case "bfd_instance":
				p.bfds[n.arg(1)] = true
			}
			p.log.Info("skipping block: it stays with keepalived", "keyword", kw, "name", n.arg(1), "pos", n.pos.String())
		}
	}
}

// unknown warns about a keyword keepalived does not know in this place.
func (p *parser) unknown(n *node) {
	if n.hasBlock {
		p.warnf(n, "unknown keyword '%s' (block skipped)", n.keyword())
		return
	}
	p.warnf(n, "unknown keyword '%s'", n.keyword())
}

// globalKnown are global_defs keywords of keepalived 2.2.7 that the checker
// does not use: accepted silently.
var globalKnown = strings.Fields(`linkbeat_use_polling net_namespace net_namespace_ipvs namespace_with_ipsets
use_pid_dir instance child_wait_time process_names process_name vrrp_process_name checker_process_name
lvs_process_name bfd_process_name notification_email_from smtp_server smtp_helo_name smtp_connect_timeout
smtp_alert startup_script startup_script_timeout shutdown_script shutdown_script_timeout max_auto_priority
min_auto_priority_delay smtp_alert_vrrp smtp_alert_checker checker_log_all_failures dynamic_interfaces
no_email_faults default_interface disable_local_igmp lvs_sync_daemon vrrp_mcast_group4 vrrp_mcast_group6
vrrp_garp_master_delay vrrp_garp_master_repeat vrrp_garp_master_refresh vrrp_garp_master_refresh_repeat
vrrp_garp_lower_prio_delay vrrp_garp_lower_prio_repeat vrrp_down_timer_adverts vrrp_garp_interval
vrrp_gna_interval vrrp_min_garp vrrp_garp_extra_if vrrp_vmac_garp_intvl vrrp_lower_prio_no_advert
vrrp_higher_prio_send_advert vrrp_version vrrp_iptables vrrp_ipsets nftables nftables_priority
nftables_ifindex nftables_ipvs nftables_ipvs_priority nftables_ipvs_start_fwmark nftables_counters
vrrp_check_unicast_src vrrp_skip_check_adv_addr vrrp_strict vrrp_priority vrrp_no_swap vrrp_rt_priority
vrrp_cpu_affinity vrrp_rlimit_rttime vrrp_rlimit_rtime notify_fifo notify_fifo_script vrrp_notify_fifo
vrrp_notify_fifo_script vrrp_notify_priority_changes fifo_write_vrrp_states_on_reload lvs_notify_fifo
lvs_notify_fifo_script checker_priority checker_no_swap checker_rt_priority checker_cpu_affinity
checker_rlimit_rttime checker_rlimit_rtime bfd_priority bfd_no_swap bfd_rt_priority bfd_cpu_affinity
bfd_rlimit_rttime bfd_rlimit_rtime snmp_socket enable_traps enable_snmp_vrrp enable_snmp_keepalived
enable_snmp_rfc enable_snmp_rfcv2 enable_snmp_rfcv3 enable_snmp_checker enable_dbus dbus_service_name
vrrp_netlink_cmd_rcv_bufs vrrp_netlink_cmd_rcv_bufs_force vrrp_netlink_monitor_rcv_bufs
vrrp_netlink_monitor_rcv_bufs_force process_monitor_rcv_bufs process_monitor_rcv_bufs_force
lvs_netlink_cmd_rcv_bufs lvs_netlink_cmd_rcv_bufs_force lvs_netlink_monitor_rcv_bufs
lvs_netlink_monitor_rcv_bufs_force rs_init_notifies no_checker_emails random_seed reload_time_file
reload_repeat reload_file config_save_dir tmp_config_directory umask`)

var globalKnownSet = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range globalKnown {
		m[k] = true
	}
	return m
}()

func (p *parser) global(b *node) {
	g := &p.cfg.Global
	for _, n := range b.children {
		kw := n.keyword()
		if kw != "notification_email" {
			p.noBlock(n)
		}
		switch kw {
		case "router_id":
			if p.need(n, 1) {
				g.RouterID = n.arg(1)
			}
		case "lvs_flush":
			g.LVSFlush = true
		case "lvs_flush_on_stop", "lvs_flush_onstop":
			switch n.arg(1) {
			case "":
				g.LVSFlushOnStop = "FULL"
			case "VS":
				g.LVSFlushOnStop = "VS"
			default:
				p.errorf(n, "unknown lvs_flush_on_stop type %s", n.arg(1))
			}
		case "lvs_timeouts":
			p.lvsTimeouts(n, g)
		case "script_user":
			if p.need(n, 1) {
				g.ScriptUser, g.ScriptGroup = n.arg(1), n.arg(2)
			}
		case "enable_script_security":
			g.EnableScriptSecurity = true
		case "rs_init_notifies":
			g.RSInitNotifies = true
		case "notification_email":
			for _, c := range n.children {
				g.NotificationEmail = append(g.NotificationEmail, c.words...)
			}
		default:
			if !globalKnownSet[kw] {
				p.unknown(n)
			}
		}
	}
}

func (p *parser) lvsTimeouts(n *node, g *Global) {
	if len(n.words) < 3 {
		p.errorf(n, "lvs_timeouts requires at least one option")
		return
	}
	for i := 1; i < len(n.words); i++ {
		opt := n.words[i]
		var target *time.Duration
		switch opt {
		case "tcp":
			target = &g.LVSTimeoutTCP
		case "tcpfin":
			target = &g.LVSTimeoutTCPFin
		case "udp":
			target = &g.LVSTimeoutUDP
		default:
			p.errorf(n, "unknown option %s specified for lvs_timeouts", opt)
			continue
		}
		if i == len(n.words)-1 {
			p.errorf(n, "no value specified for lvs_timeouts %s", opt)
			continue
		}
		v, err := parseUint(n.words[i+1], 0, lvsMaxTimeout)
		if err != nil {
			p.errorf(n, "invalid lvs_timeouts %s: %v", opt, err)
		} else {
			*target = time.Duration(v) * time.Second
		}
		i++
	}
}

func (p *parser) ssl(b *node) {
	if p.sslSeen {
		p.errorf(b, "SSL context already specified - replacing")
	}
	p.sslSeen = true
	s := &p.cfg.Global.SSL
	*s = SSLDefs{}
	for _, n := range b.children {
		p.noBlock(n)
		var dst *string
		switch n.keyword() {
		case "password":
			dst = &s.Password
		case "ca":
			dst = &s.CAFile
		case "certificate":
			dst = &s.CertFile
		case "key":
			dst = &s.KeyFile
		default:
			p.unknown(n)
			continue
		}
		if !p.need(n, 1) {
			continue
		}
		if *dst != "" {
			p.errorf(n, "SSL %s already specified", n.keyword())
		}
		*dst = n.arg(1)
	}
}
