package ipvs

import (
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Keepalived's values for what the configuration leaves out.
const (
	defaultScheduler = "wlc" // IPVS_DEF_SCHED
	sorryWeight      = 1     // alloc_ssvr: a sorry server always has weight 1
	maxWeight        = 65535 // the kernel reports weights in 16 bits
)

// realWeight clamps a configured weight the way keepalived's real_weight
// does (negative is 0), and to the 16 bits the kernel reports back.
func realWeight(w int) int {
	return min(max(w, 0), maxWeight)
}

// serviceKeys returns the IPVS services vs owns: vs.Services as the
// parser expanded them, or the single service of an address or fwmark
// virtual server when the list is empty.
func serviceKeys(vs *config.VirtualServer) []config.ServiceKey {
	if len(vs.Services) > 0 || vs.Group != "" {
		return vs.Services
	}
	return []config.ServiceKey{{Protocol: vs.Protocol, Addr: vs.Addr, Port: vs.Port, FWMark: vs.FWMark, Family: vs.Family}}
}

// serviceFor returns the service settings vs asks for on key k, as
// keepalived's ipvs_set_srule fills them.
func serviceFor(vs *config.VirtualServer, k config.ServiceKey) Service {
	id := serviceID(k)
	if id.FWMark == 0 {
		id.Protocol = k.Protocol
	}
	s := Service{ServiceKey: k, Scheduler: vs.Scheduler, Netmask: fullMask(id.Family)}
	if s.Scheduler == "" {
		s.Scheduler = defaultScheduler
	}
	flags := append([]string(nil), vs.SchedFlags...)
	if vs.OnePacket {
		flags = append(flags, "ops")
	}
	if vs.Persistence > 0 {
		flags = append(flags, "persistent")
		s.Timeout = uint32(vs.Persistence / time.Second)
		if vs.PersistMask.IsValid() {
			s.Netmask = vs.PersistMask
		}
		s.PEName = vs.PersistEngine
	}
	s.Flags = canonicalFlags(flags)
	return s
}

// destPort returns the destination port keepalived programs: the real
// server's own port for NAT; for DR and TUN the kernel cannot translate
// ports, so the service's port (0 on a fwmark service).
func destPort(k config.ServiceKey, m config.Method, port uint16) uint16 {
	if m == config.NAT || m == "" {
		return port
	}
	if k.FWMark != 0 {
		return 0
	}
	return k.Port
}

// quorumNext returns the quorum state of a virtual server whose alive
// real servers weigh sum, given the previous state (nil at start), with
// keepalived's hysteresis: lost when the sum is 0 or below
// quorum-hysteresis, regained at quorum+hysteresis.
func quorumNext(vs *config.VirtualServer, sum int, prev *bool) bool {
	q, h := max(vs.Quorum, 1), max(vs.Hysteresis, 0)
	var up bool
	if prev == nil {
		up = sum >= q+h // set_quorum_states at start
	} else {
		up = *prev
	}
	switch {
	case !up && sum >= q+h:
		return true
	case up && (sum == 0 || sum < q-h):
		return false
	}
	return up
}

// vsResult is what building one virtual server decided.
type vsResult struct {
	QuorumUp    bool // quorum state after this evaluation
	SorryActive bool // the sorry server is in service
	Collisions  int  // real servers dropped because another one owns the same destination
	Weight      int  // sum of the weights of the alive real servers
}

// buildVS adds the desired destinations of vs to t and returns its quorum
// state. alive[i] reports whether vs.RealServers[i] counts as alive
// (reported, assumed or default health; see Reconciler); weights[i] is its
// effective weight (nil: the configured ones). The rules are keepalived
// 2.2.7's (check/ipwrapper.c):
//   - an alive real server is in with its weight; a dead one is out, or in
//     with weight 0 under inhibit_on_failure;
//   - quorum is the sum of the weights of the alive real servers, with
//     hysteresis (quorumNext);
//   - without quorum and with a sorry_server, every real server is out
//     (or weight 0 under inhibit_on_failure) and the sorry server is in
//     with weight 1; with sorry_server_inhibit the sorry server stays in
//     with weight 0 while quorum holds;
//   - without a sorry_server, quorum changes nothing in the table.
func buildVS(t table, vs *config.VirtualServer, alive []bool, weights []int, prev *bool) vsResult {
	weightOf := func(i int) int {
		if weights != nil {
			return realWeight(weights[i])
		}
		return realWeight(vs.RealServers[i].Weight)
	}
	sum := 0
	for i := range vs.RealServers {
		if alive[i] {
			sum += weightOf(i)
		}
	}
	res := vsResult{QuorumUp: quorumNext(vs, sum, prev), Weight: sum}
	res.SorryActive = vs.SorryServer != nil && !res.QuorumUp

	for _, k := range serviceKeys(vs) {
		ts := t.service(serviceFor(vs, k), len(vs.RealServers)+1)
		var sorry *Destination
		if ss := vs.SorryServer; ss != nil && (res.SorryActive || vs.SorryServerInhibit) {
			m := ss.Method
			if m == "" {
				m = vs.Method
			}
			tun := ss.Tunnel
			if tun == nil && ss.Method == "" {
				tun = vs.Tunnel
			}
			d := Destination{Addr: ss.Addr.Unmap(), Port: destPort(k, m, ss.Port), Method: m, Tunnel: tunnelOf(m, tun)}
			if res.SorryActive {
				d.Weight = sorryWeight
			}
			sorry = &d
		}
		for i, rs := range vs.RealServers {
			up := alive[i]
			weight := weightOf(i)
			switch {
			case res.SorryActive && rs.InhibitOnFailure:
				weight = 0
			case res.SorryActive:
				continue
			case !up && rs.InhibitOnFailure:
				weight = 0
			case !up:
				continue
			}
			m := rs.Method
			if m == "" {
				m = vs.Method
			}
			d := Destination{
				Addr: rs.Addr.Unmap(), Port: destPort(k, m, rs.Port), Weight: weight, Method: m,
				Tunnel: tunnelOf(m, rs.Tunnel), UpperThreshold: rs.UpperThreshold, LowerThreshold: rs.LowerThreshold,
			}
			dk := keyOf(d)
			if _, dup := ts.dests[dk]; dup {
				res.Collisions++
				continue
			}
			ts.dests.put(d)
		}
		if sorry != nil {
			// The sorry server may be one of the real servers (keepalived's
			// s_svr_duplicates_rs): in service it wins; inhibited it only
			// fills the place when the real server is out.
			dk := keyOf(*sorry)
			if _, dup := ts.dests[dk]; res.SorryActive || !dup {
				ts.dests.put(*sorry)
			}
		}
	}
	return res
}

// hasAlpha reports whether rs starts out of the pool until a check
// passes: keepalived's alpha is per checker, and one alpha checker keeps
// the real server down until it has run.
func hasAlpha(rs *config.RealServer) bool {
	if len(rs.Checkers) == 0 {
		return false // no checker: keepalived keeps it alive for good
	}
	if rs.Alpha {
		return true
	}
	for _, c := range rs.Checkers {
		if c != nil && c.Alpha {
			return true
		}
	}
	return false
}
