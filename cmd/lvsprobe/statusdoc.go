package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/ipvs"
	"github.com/lvsprobe/lvsprobe/internal/prober"
)

// statusFormat is the version of the status document; a client refuses a
// document of another format.
const statusFormat = 1

// maxStatusBytes bounds the status document a client reads (10,000 real
// servers take a few MB).
const maxStatusBytes = 256 << 20

// statusDoc is what GET /status on the control socket returns and
// `lvsprobe status --json` prints.
type statusDoc struct {
	Format         int             `json:"format"`
	Version        string          `json:"version"`
	PID            int             `json:"pid"`
	Now            time.Time       `json:"now"` // the daemon's clock, for the ages shown
	Config         string          `json:"config"`
	ConfigLoadedAt time.Time       `json:"config_loaded_at"`
	Reloading      bool            `json:"reloading"` // a reload is running: this is the configuration running until it ends
	LastReload     *reloadResult   `json:"last_reload,omitempty"`
	Heartbeat      time.Time       `json:"scheduler_heartbeat,omitzero"` // the check loop's last round (see lvsprobe_scheduler_heartbeat_timestamp_seconds)
	Detector       string          `json:"detector,omitempty"`           // the failure detector's mode, when one runs
	Services       []statusService `json:"services"`
}

// statusService is one IPVS service of the configuration.
type statusService struct {
	VirtualServer string             `json:"virtual_server"` // the virtual_server block, as keepalived names it
	Service       string             `json:"service"`        // as ipvsadm -Ln prints it: "TCP 198.18.0.1:80", "FWM 7"
	Scheduler     string             `json:"scheduler"`
	Persistence   uint32             `json:"persistence_timeout,omitempty"` // seconds
	QuorumUp      *bool              `json:"quorum_up,omitempty"`           // nil before the reconciler evaluated it
	RealServers   []statusRealServer `json:"real_servers"`
}

// statusRealServer is one real server of a service.
type statusRealServer struct {
	Address       string        `json:"address"` // the destination as in IPVS, ADDR:PORT
	Forward       string        `json:"forward"` // Masq, Route or Tunnel, as ipvsadm prints it
	Weight        int           `json:"weight"`  // configured
	IPVSWeight    *int          `json:"ipvs_weight"`
	State         string        `json:"state"`                    // up, down, or pending (no check has run yet)
	LastCheck     time.Time     `json:"last_check,omitzero"`      // the newest completed attempt of its checks
	Latency       float64       `json:"check_latency_seconds"`    // how long that attempt took
	Reason        string        `json:"reason"`                   // its result; for a down real server, a failing check's
	FlapPenalty   *float64      `json:"flap_penalty,omitempty"`   // the detector's flap damping penalty, when a detector runs
	DetectorState string        `json:"detector_state,omitempty"` // the detector's view of its endpoint (up, suspect, down, recovering)
	Checks        []statusCheck `json:"checks"`
}

// statusCheck is one check of a real server.
type statusCheck struct {
	Checker   string    `json:"checker"`  // "TCP_CHECK 198.18.1.2:80"
	Position  string    `json:"position"` // FILE:LINE of its block
	State     string    `json:"state"`    // up, down, pending
	Retries   int       `json:"retries"`  // failed attempts on the current retry ladder
	LastCheck time.Time `json:"last_check,omitzero"`
	Latency   float64   `json:"latency_seconds"`
	Result    string    `json:"result"`
	Next      time.Time `json:"next,omitzero"` // zero while an attempt runs
}

// decodeStatus reads a status document and checks that it is one this
// client understands.
func decodeStatus(r io.Reader) (*statusDoc, error) {
	var d statusDoc
	dec := json.NewDecoder(io.LimitReader(r, maxStatusBytes))
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("decode status: %w", err)
	}
	if d.Format != statusFormat {
		return nil, fmt.Errorf("decode status: format %d, this lvsprobe reads format %d (mismatched versions?)", d.Format, statusFormat)
	}
	for i := range d.Services {
		if d.Services[i].Service == "" {
			return nil, errors.New("decode status: a service without a name")
		}
	}
	return &d, nil
}

// detectorView is what the status shows of the failure detector, when
// run.go wires one: its mode, and per real server and endpoint lookups.
// A nil func shows nothing.
type detectorView struct {
	Mode    string
	Penalty func(config.RealServerKey) (float64, bool)
	State   func(netip.AddrPort) (string, bool)
}

// forwardName is the forwarding method as ipvsadm -Ln prints it.
func forwardName(m config.Method) string {
	switch m {
	case config.NAT:
		return "Masq"
	case config.DR:
		return "Route"
	case config.TUN:
		return "Tunnel"
	}
	return string(m)
}

// checkState names a check's state.
func checkState(c prober.CheckerHealth) string {
	switch {
	case !c.HasRun:
		return "pending"
	case c.Up:
		return "up"
	}
	return "down"
}

// resultLine is a check result's text.
func resultLine(r prober.Result) string {
	switch {
	case r.Message != "":
		return r.Message
	case r.Err != nil:
		return r.Err.Error()
	case r.OK:
		return "success"
	}
	return ""
}

// statusInput is what buildStatus reads from the running daemon.
type statusInput struct {
	file      string
	cfg       *config.Config
	loadedAt  time.Time
	reloading bool
	last      *reloadResult
	sched     *prober.Scheduler
	rec       *ipvs.Reconciler
	det       *detectorView
}

// buildStatus assembles the status document.
func buildStatus(in statusInput) *statusDoc {
	d := &statusDoc{Format: statusFormat, Version: version, PID: os.Getpid(), Now: time.Now(), Config: in.file,
		ConfigLoadedAt: in.loadedAt, Reloading: in.reloading, LastReload: in.last, Heartbeat: in.sched.Heartbeat(),
		Services: []statusService{}}
	if in.det != nil {
		d.Detector = in.det.Mode
	}
	health := map[config.RealServerKey]prober.RealServerHealth{}
	for _, h := range in.sched.Health() {
		health[h.Key] = h
	}
	weights := in.rec.Weights()
	for _, vs := range in.cfg.VirtualServers {
		var quorum *bool
		if up, known := in.rec.QuorumUp(vs.ID()); known {
			quorum = &up
		}
		for _, k := range ipvs.ServiceKeys(vs) {
			ss := statusService{VirtualServer: vs.ID(), Service: k.String(), Scheduler: vs.Scheduler, QuorumUp: quorum,
				RealServers: make([]statusRealServer, 0, len(vs.RealServers))}
			if vs.Persistence > 0 {
				ss.Persistence = uint32(vs.Persistence / time.Second)
			}
			for _, rs := range vs.RealServers {
				ss.RealServers = append(ss.RealServers, realServerStatus(vs, rs, k, health[rs.Key(vs)], weights, in.det))
			}
			d.Services = append(d.Services, ss)
		}
	}
	return d
}

// realServerStatus is the status of real server rs of vs in service k.
func realServerStatus(vs *config.VirtualServer, rs *config.RealServer, k config.ServiceKey, h prober.RealServerHealth,
	weights map[ipvs.DestinationKey]int, det *detectorView) statusRealServer {
	dk := ipvs.DestinationOf(vs, rs, k)
	m := rs.Method
	if m == "" {
		m = vs.Method
	}
	out := statusRealServer{Address: netip.AddrPortFrom(dk.Addr, dk.Port).String(), Forward: forwardName(m), Weight: rs.Weight,
		State: "down", Checks: make([]statusCheck, 0, len(h.Checkers))}
	if w, ok := weights[dk]; ok {
		out.IPVSWeight = &w
	}
	if h.Up {
		out.State = "up"
	}
	anyRun := len(h.Checkers) == 0
	var newest, failing *prober.CheckerHealth
	for i := range h.Checkers {
		c := &h.Checkers[i]
		anyRun = anyRun || c.HasRun
		out.Checks = append(out.Checks, statusCheck{Checker: c.Checker, Position: c.Pos.String(), State: checkState(*c), Retries: c.Retries,
			LastCheck: c.LastAt, Latency: c.Last.Duration.Seconds(), Result: resultLine(c.Last), Next: c.Next})
		if !c.LastAt.IsZero() && (newest == nil || c.LastAt.After(newest.LastAt)) {
			newest = c
		}
		if c.HasRun && !c.Up && failing == nil {
			failing = c
		}
	}
	if !anyRun {
		out.State = "pending"
	}
	if newest != nil {
		out.LastCheck, out.Latency = newest.LastAt, newest.Last.Duration.Seconds()
		out.Reason = withChecker(newest.Checker, resultLine(newest.Last))
	}
	if failing != nil {
		out.Reason = withChecker(failing.Checker, resultLine(failing.Last))
	}
	if len(h.Checkers) == 0 {
		out.Reason = "no checker: always up"
	}
	if det != nil {
		if det.Penalty != nil {
			if p, ok := det.Penalty(rs.Key(vs)); ok {
				out.FlapPenalty = &p
			}
		}
		if det.State != nil && len(rs.Checkers) > 0 {
			c := rs.Checkers[0]
			if s, ok := det.State(netip.AddrPortFrom(c.ConnectIP, c.ConnectPort)); ok {
				out.DetectorState = s
			}
		}
	}
	return out
}

// withChecker prefixes a result with its checker unless it names it.
func withChecker(checker, result string) string {
	if strings.HasPrefix(result, checker) {
		return result
	}
	return checker + ": " + result
}
