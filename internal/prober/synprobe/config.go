package synprobe

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReceiverMode selects how answers are received.
type ReceiverMode int

// Receiver modes.
const (
	ReceiverAuto   ReceiverMode = iota // eBPF, falling back to a packet socket with a warning
	ReceiverEBPF                       // eBPF only; New fails where it cannot load
	ReceiverPacket                     // the packet-socket fallback only
)

// Config configures a [Prober]. Zero fields take the values of
// [DefaultConfig].
type Config struct {
	PortLo, PortHi    uint16                // source ports reserved for probes (inclusive)
	Interval          time.Duration         // per-target probe interval
	PPS               int                   // global cap on probes per second
	Batch             int                   // probes per sendmmsg call
	Interfaces        []string              // interfaces the eBPF receiver watches from the start (Add attaches it to the ones targets route through)
	Receiver          ReceiverMode          // eBPF, fallback, or eBPF with fallback
	RawSockets        bool                  // send every probe through the raw sockets, never as a prebuilt frame
	KernelRST         bool                  // leave the answers to the director's stack, which resets each SYN-ACK (the eBPF receiver otherwise sends the RST itself and drops RSTs to us)
	SecretRotation    time.Duration         // how often the cookie key changes
	SignalBuffer      int                   // capacity of the Signals channel, in batches
	ReservedPortsFile string                // the sysctl file; "" for /proc/sys/net/ipv4/ip_local_reserved_ports
	Logger            *slog.Logger          // nil discards
	Registerer        prometheus.Registerer // nil registers nothing
}

// DefaultConfig returns the defaults: probe each target every 80 ms, at
// most 200,000 probes/s in all, source ports 61000-61999 (outside Linux's
// default ephemeral range 32768-60999).
//
// 80 ms, not 100: a real server killed with no client traffic is first
// seen by its next probe, 0 to one interval after the kill, and lvsprobe's
// own steps after the RST take 1–20 ms more, so a 100 ms interval put the
// p99 of its removal just over the 100 ms target (93–101 ms at 10,000
// real servers) and 80 ms puts it at 73–80 ms, for 25 % more probes
// (docs/benchmarks.md §20).
func DefaultConfig() Config {
	return Config{
		PortLo: 61000, PortHi: 61999,
		Interval:       80 * time.Millisecond,
		PPS:            200000,
		Batch:          64,
		SecretRotation: time.Minute,
		SignalBuffer:   256,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.PortLo == 0 {
		c.PortLo, c.PortHi = d.PortLo, d.PortHi
	}
	if c.Interval <= 0 {
		c.Interval = d.Interval
	}
	if c.PPS <= 0 {
		c.PPS = d.PPS
	}
	if c.Batch <= 0 {
		c.Batch = d.Batch
	}
	if c.SecretRotation <= 0 {
		c.SecretRotation = d.SecretRotation
	}
	if c.SignalBuffer <= 0 {
		c.SignalBuffer = d.SignalBuffer
	}
	if c.ReservedPortsFile == "" {
		c.ReservedPortsFile = reservedPortsFile
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
