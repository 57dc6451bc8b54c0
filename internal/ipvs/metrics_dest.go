package ipvs

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// BackendLabels are the labels of the per-destination metrics, the same
// names and values as node_exporter's node_ipvs_backend_* series (read
// from /proc/net/ip_vs), so the two join with on(...) in PromQL:
// local_address and local_port are the virtual service ("" and "0" for a
// fwmark service), remote_address and remote_port the real server,
// proto is TCP, UDP, SCTP or FWM, and local_mark is the fwmark as
// /proc/net/ip_vs prints it (8 upper-case hex digits), "" otherwise.
var BackendLabels = []string{"local_address", "local_port", "remote_address", "remote_port", "proto", "local_mark"}

// backendLabelValues returns the BackendLabels values of destination
// addr:port of service k.
func backendLabelValues(k config.ServiceKey, addr netip.Addr, port uint16) []string {
	local, lport, proto, mark := "", "0", string(k.Protocol), ""
	if k.FWMark != 0 {
		proto, mark = "FWM", fmt.Sprintf("%08X", k.FWMark)
	} else {
		local, lport = k.Addr.Unmap().String(), strconv.Itoa(int(k.Port))
	}
	return []string{local, lport, addr.Unmap().String(), strconv.Itoa(int(port)), proto, mark}
}

var (
	destWeightDesc   = prometheus.NewDesc(destWeightName, destWeightHelp, BackendLabels, nil)
	realServerUpDesc = prometheus.NewDesc(realServerUpName, realServerUpHelp, BackendLabels, nil)
)

// collectDestinations sends the per-destination metrics as const
// metrics (the way before DirectGatherer; the reference its tests compare
// the direct families with).
func (c *Collector) collectDestinations(ch chan<- prometheus.Metric) {
	type series struct {
		desc *prometheus.Desc
		v    float64
		lv   []string
	}
	var out []series
	type seriesKey struct {
		desc *prometheus.Desc
		lv   string
	}
	seen := map[seriesKey]bool{}
	add := func(d *prometheus.Desc, v float64, lv []string) {
		id := seriesKey{d, strings.Join(lv, "\x00")}
		if seen[id] {
			return // two real servers on one destination: the first wins, as in the table
		}
		seen[id] = true
		out = append(out, series{d, v, lv})
	}
	r := c.r
	r.mu.Lock()
	r.eachDestination(func(k config.ServiceKey, addr netip.Addr, port uint16, w float64) {
		add(destWeightDesc, w, backendLabelValues(k, addr, port))
	}, func(k config.ServiceKey, addr netip.Addr, port uint16, up float64) {
		add(realServerUpDesc, up, backendLabelValues(k, addr, port))
	})
	r.mu.Unlock()
	for _, s := range out {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, s.v, s.lv...)
	}
}

// eachDestination calls weight for every destination of the desired
// table (its weight) and up for every real server the last pass has
// seen, once per IPVS service it is configured under (1 up, 0 down), in
// the table's and the config's order. The caller holds r.mu.
func (r *Reconciler) eachDestination(weight, up func(k config.ServiceKey, addr netip.Addr, port uint16, v float64)) {
	for _, ts := range r.desired {
		for _, d := range ts.dests.all() {
			weight(ts.svc.ServiceKey, d.Addr, d.Port, float64(d.Weight))
		}
	}
	for _, vs := range r.cfg.VirtualServers {
		hv := r.health[vs.ID()]
		for _, rs := range vs.RealServers {
			h, ok := hv[rsAddrOf(rs.Addr, rs.Port)]
			if !ok {
				continue // not yet seen by a pass
			}
			v := 0.0
			if h.up {
				v = 1
			}
			m := rs.Method
			if m == "" {
				m = vs.Method
			}
			for _, k := range serviceKeys(vs) {
				up(k, rs.Addr, destPort(k, m, rs.Port), v)
			}
		}
	}
}
