package config

import (
	"encoding/json"
	"strconv"
	"time"
)

// Seconds is a duration that encodes to JSON as a number of seconds with
// microsecond resolution (keepalived's timer unit), e.g. 2.5.
type Seconds time.Duration

// MarshalJSON encodes s as decimal seconds.
func (s Seconds) MarshalJSON() ([]byte, error) {
	return []byte(secondsString(time.Duration(s))), nil
}

// UnmarshalJSON decodes decimal seconds.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*s = Seconds(time.Duration(f*1e6) * time.Microsecond)
	return nil
}

// MarshalJSON encodes the global settings with timers in seconds.
func (g Global) MarshalJSON() ([]byte, error) {
	type plain Global
	return json.Marshal(struct {
		plain
		LVSTimeoutTCP    Seconds `json:"lvs_timeout_tcp,omitempty"`
		LVSTimeoutTCPFin Seconds `json:"lvs_timeout_tcpfin,omitempty"`
		LVSTimeoutUDP    Seconds `json:"lvs_timeout_udp,omitempty"`
	}{plain(g), Seconds(g.LVSTimeoutTCP), Seconds(g.LVSTimeoutTCPFin), Seconds(g.LVSTimeoutUDP)})
}

// MarshalJSON encodes the virtual server with timers in seconds.
func (vs VirtualServer) MarshalJSON() ([]byte, error) {
	type plain VirtualServer
	return json.Marshal(struct {
		plain
		ID          string  `json:"id"`
		DelayLoop   Seconds `json:"delay_loop"`
		Persistence Seconds `json:"persistence_timeout"`
	}{plain(vs), vs.ID(), Seconds(vs.DelayLoop), Seconds(vs.Persistence)})
}

// MarshalJSON encodes the checker with timers in seconds.
func (c Checker) MarshalJSON() ([]byte, error) {
	type plain Checker
	return json.Marshal(struct {
		plain
		ConnectTimeout   Seconds `json:"connect_timeout"`
		DelayBeforeRetry Seconds `json:"delay_before_retry"`
		DelayLoop        Seconds `json:"delay_loop"`
		Warmup           Seconds `json:"warmup"`
	}{plain(c), Seconds(c.ConnectTimeout), Seconds(c.DelayBeforeRetry), Seconds(c.DelayLoop), Seconds(c.Warmup)})
}

// MarshalJSON encodes the MISC_CHECK options with misc_timeout in seconds.
func (m MiscOptions) MarshalJSON() ([]byte, error) {
	type plain MiscOptions
	return json.Marshal(struct {
		plain
		Timeout Seconds `json:"misc_timeout"`
	}{plain(m), Seconds(m.Timeout)})
}
