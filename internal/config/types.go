package config

import (
	"fmt"
	"net/netip"
	"time"
)

// Defaults that keepalived 2.2.7 applies when a keyword is absent.
const (
	DefaultDelayLoop                  = 60 * time.Second
	DefaultConnectTimeout             = 5 * time.Second
	DefaultRetry                      = 1
	DefaultDNSRetry                   = 3
	DefaultMiscRetry                  = 0
	DefaultHTTPDelayBeforeRetry       = 3 * time.Second
	DefaultDelayBeforeRetry           = 1 * time.Second
	DefaultWeight                     = 1
	DefaultQuorum                     = 1
	DefaultPersistenceTimeout         = 360 * time.Second
	DefaultMiscTimeout                = 0 // 0 means: use delay_loop, as keepalived does
	DefaultStatusCodeLow              = 200
	DefaultStatusCodeHigh             = 299
	DefaultDNSType                    = "SOA"
	DefaultDNSName                    = "."
	DefaultSMTPHeloName               = "smtpchecker.keepalived.org" // check_smtp.h SMTP_DEFAULT_HELO
	DefaultPingRetry                  = 1
	DefaultBodyCap              int64 = 4 << 20 // lvsprobe's cap on an HTTP body read by a check
)

// Pos is a place in a configuration file.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

// String returns "FILE:LINE", the form every diagnostic starts with, or
// just "FILE" when the position is the file as a whole (Line 0).
func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Protocol is the transport of a virtual service.
type Protocol string

// Transport protocols of virtual services.
const (
	TCP  Protocol = "TCP"
	UDP  Protocol = "UDP"
	SCTP Protocol = "SCTP"
)

// Method is the IPVS forwarding method (keepalived's lb_kind / lvs_method).
type Method string

// Forwarding methods.
const (
	NAT Method = "NAT"
	DR  Method = "DR"
	TUN Method = "TUN"
)

// Tunnel holds the options of the TUN method (keepalived: `lvs_method TUN
// type ipip|gue port N|gre [nocsum|csum|remcsum]`).
type Tunnel struct {
	Type     string `json:"type,omitempty"`     // "ipip" (default), "gue" or "gre"
	Port     uint16 `json:"port,omitempty"`     // GUE destination port
	Checksum string `json:"checksum,omitempty"` // "nocsum" (default), "csum" or "remcsum"
}

// Script is a notify or quorum script: the command line split into words
// as keepalived splits it (quotes honoured), never run through a shell.
type Script struct {
	Pos   Pos      `json:"pos"`
	Args  []string `json:"args"`
	User  string   `json:"user,omitempty"`  // optional "username [groupname]" after the command
	Group string   `json:"group,omitempty"` //
}

// Config is a parsed, validated keepalived.conf: the part lvsprobe owns.
// It is immutable once returned by Load; callers must not modify it.
type Config struct {
	Files          []string                       `json:"files"`            // every file read, the main one first
	Global         Global                         `json:"global"`           // global_defs, the parts the checker uses
	Groups         map[string]*VirtualServerGroup `json:"groups,omitempty"` // virtual_server_group blocks by name
	VirtualServers []*VirtualServer               `json:"virtual_servers"`  // in file order
	Warnings       []Diagnostic                   `json:"-"`                // non-fatal findings, FILE:LINE each
}

// Global holds the checker-relevant parts of global_defs.
type Global struct {
	RouterID             string        `json:"router_id,omitempty"`
	LVSFlush             bool          `json:"lvs_flush"`
	LVSFlushOnStop       string        `json:"lvs_flush_on_stop,omitempty"` // "", "FULL" (no argument) or "VS"
	LVSTimeoutTCP        time.Duration `json:"lvs_timeout_tcp,omitempty"`
	LVSTimeoutTCPFin     time.Duration `json:"lvs_timeout_tcpfin,omitempty"`
	LVSTimeoutUDP        time.Duration `json:"lvs_timeout_udp,omitempty"`
	ScriptUser           string        `json:"script_user,omitempty"`
	ScriptGroup          string        `json:"script_group,omitempty"`
	EnableScriptSecurity bool          `json:"enable_script_security"`
	RSInitNotifies       bool          `json:"rs_init_notifies,omitempty"` // notify_up for real servers alive at start
	SSL                  SSLDefs       `json:"ssl"`
	NotificationEmail    []string      `json:"notification_email,omitempty"`
}

// SSLDefs is the global `SSL { }` block used by SSL_GET.
type SSLDefs struct {
	Password string `json:"-"`
	CAFile   string `json:"ca,omitempty"`
	CertFile string `json:"certificate,omitempty"`
	KeyFile  string `json:"key,omitempty"`
}

// VirtualServerGroup is a `virtual_server_group NAME { }` block.
type VirtualServerGroup struct {
	Pos     Pos           `json:"pos"`
	Name    string        `json:"name"`
	Members []GroupMember `json:"members"`
}

// GroupMember is one line of a virtual_server_group: an address range and
// port, or a firewall mark.
type GroupMember struct {
	Pos    Pos        `json:"pos"`
	First  netip.Addr `json:"first,omitzero"` // first address (A.B.C.D)
	Last   netip.Addr `json:"last,omitzero"`  // last address (A.B.C.E of A.B.C.D-E); equals First for one address
	Port   uint16     `json:"port,omitempty"`
	FWMark uint32     `json:"fwmark,omitempty"`
	Family string     `json:"family,omitempty"` // for fwmark members: "inet" or "inet6"
}

// VirtualServer is one `virtual_server` block with every default and
// inherited value resolved.
type VirtualServer struct {
	Pos      Pos          `json:"pos"`
	Addr     netip.Addr   `json:"address,omitzero"` // `virtual_server IP PORT`
	Port     uint16       `json:"port,omitempty"`
	FWMark   uint32       `json:"fwmark,omitempty"` // `virtual_server fwmark N`
	Group    string       `json:"group,omitempty"`  // `virtual_server group NAME`
	Family   string       `json:"family"`           // "inet" or "inet6"
	Protocol Protocol     `json:"protocol"`
	Services []ServiceKey `json:"services"` // the IPVS services this block owns (groups expanded)

	DelayLoop        time.Duration `json:"delay_loop"`
	Scheduler        string        `json:"lvs_sched"`             // rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos
	SchedFlags       []string      `json:"sched_flags,omitempty"` // flag-1..3, sh-port, sh-fallback, mh-port, mh-fallback
	OnePacket        bool          `json:"ops"`                   // `ops`: one-packet scheduling (UDP)
	Method           Method        `json:"lvs_method"`            //
	Tunnel           *Tunnel       `json:"tunnel,omitempty"`      //
	Persistence      time.Duration `json:"persistence_timeout"`   // 0 when not persistent
	PersistMask      netip.Addr    `json:"persistence_granularity,omitzero"`
	PersistEngine    string        `json:"persistence_engine,omitempty"`
	HASuspend        bool          `json:"ha_suspend"`
	VirtualHost      string        `json:"virtualhost,omitempty"`
	Alpha            bool          `json:"alpha"`
	Omega            bool          `json:"omega"`
	Quorum           int           `json:"quorum"`
	Hysteresis       int           `json:"hysteresis"`
	QuorumUp         *Script       `json:"quorum_up,omitempty"`
	QuorumDown       *Script       `json:"quorum_down,omitempty"`
	InhibitOnFailure bool          `json:"inhibit_on_failure"`

	SorryServer        *SorryServer `json:"sorry_server,omitempty"`
	SorryServerInhibit bool         `json:"sorry_server_inhibit"`

	RealServers []*RealServer `json:"real_servers"`

	id string // ID(), kept by Load so that every key of its real servers shares it
}

// SorryServer is the destination added when quorum is lost.
type SorryServer struct {
	Pos    Pos        `json:"pos"`
	Addr   netip.Addr `json:"address"`
	Port   uint16     `json:"port,omitempty"`
	Method Method     `json:"lvs_method"`
	Tunnel *Tunnel    `json:"tunnel,omitempty"`
}

// RealServer is one `real_server` block with defaults resolved.
type RealServer struct {
	Pos              Pos        `json:"pos"`
	Addr             netip.Addr `json:"address"`
	Port             uint16     `json:"port,omitempty"`
	Weight           int        `json:"weight"`
	Method           Method     `json:"lvs_method"`
	Tunnel           *Tunnel    `json:"tunnel,omitempty"`
	UpperThreshold   uint32     `json:"uthreshold,omitempty"`
	LowerThreshold   uint32     `json:"lthreshold,omitempty"`
	InhibitOnFailure bool       `json:"inhibit_on_failure"`
	Alpha            bool       `json:"alpha"`
	VirtualHost      string     `json:"virtualhost,omitempty"`
	NotifyUp         *Script    `json:"notify_up,omitempty"`
	NotifyDown       *Script    `json:"notify_down,omitempty"`
	Checkers         []*Checker `json:"checkers"`
}

// CheckerType names a checker block.
type CheckerType string

// Checker blocks keepalived knows.
const (
	TCPCheck  CheckerType = "TCP_CHECK"
	HTTPGet   CheckerType = "HTTP_GET"
	SSLGet    CheckerType = "SSL_GET"
	MiscCheck CheckerType = "MISC_CHECK"
	SMTPCheck CheckerType = "SMTP_CHECK"
	DNSCheck  CheckerType = "DNS_CHECK"
	UDPCheck  CheckerType = "UDP_CHECK"
	PingCheck CheckerType = "PING_CHECK"
	FileCheck CheckerType = "FILE_CHECK"
	BFDCheck  CheckerType = "BFD_CHECK"
)

// Checker is one checker block of a real server, with the connection and
// timing options every checker shares resolved, plus the type-specific part.
type Checker struct {
	Pos  Pos         `json:"pos"`
	Type CheckerType `json:"type"`

	// Where to connect: defaults to the real server's address and port.
	ConnectIP   netip.Addr `json:"connect_ip"`
	ConnectPort uint16     `json:"connect_port"`
	BindTo      netip.Addr `json:"bindto,omitzero"`
	BindPort    uint16     `json:"bind_port,omitempty"`
	BindIf      string     `json:"bind_if,omitempty"`
	FWMark      uint32     `json:"fwmark,omitempty"`

	ConnectTimeout   time.Duration `json:"connect_timeout"`
	Retry            int           `json:"retry"`
	DelayBeforeRetry time.Duration `json:"delay_before_retry"`
	DelayLoop        time.Duration `json:"delay_loop"`
	Warmup           time.Duration `json:"warmup"`
	Alpha            bool          `json:"alpha"`
	LogAllFailures   bool          `json:"log_all_failures"`

	HTTP *HTTPOptions `json:"http,omitempty"` // HTTP_GET and SSL_GET
	Misc *MiscOptions `json:"misc,omitempty"`
	SMTP *SMTPOptions `json:"smtp,omitempty"`
	DNS  *DNSOptions  `json:"dns,omitempty"`
	UDP  *UDPOptions  `json:"udp,omitempty"`
	File *FileOptions `json:"file,omitempty"`
	BFD  *BFDOptions  `json:"bfd,omitempty"`
}

// HTTPOptions are the options of HTTP_GET and SSL_GET.
type HTTPOptions struct {
	Protocol     string `json:"http_protocol"`         // "1.0" (default), "1.0C" or "1.1"
	VirtualHost  string `json:"virtualhost,omitempty"` // resolved: checker → real server → virtual server
	FastRecovery bool   `json:"fast_recovery"`
	EnableSNI    bool   `json:"enable_sni"`
	SNIName      string `json:"sni_name,omitempty"`
	TLSCompliant bool   `json:"tls_compliant"`
	URLs         []*URL `json:"urls"`
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct {
	Low  int `json:"low"`
	High int `json:"high"`
}

// URL is one `url { }` block of HTTP_GET / SSL_GET.
type URL struct {
	Pos            Pos           `json:"pos"`
	Path           string        `json:"path"`
	Digest         string        `json:"digest,omitempty"`      // lower-case hex MD5 of the body
	StatusCodes    []StatusRange `json:"status_code"`           // default 200-299
	VirtualHost    string        `json:"virtualhost,omitempty"` // resolved through the chain
	Regex          string        `json:"regex,omitempty"`
	RegexNoMatch   bool          `json:"regex_no_match"`
	RegexOptions   []string      `json:"regex_options,omitempty"`
	RegexMinOffset int           `json:"regex_min_offset,omitempty"`
	RegexMaxOffset int           `json:"regex_max_offset,omitempty"`
}

// MiscOptions are the options of MISC_CHECK.
type MiscOptions struct {
	Path    *Script       `json:"misc_path"`
	Timeout time.Duration `json:"misc_timeout"`
	Dynamic bool          `json:"misc_dynamic"`
}

// SMTPOptions are the options of SMTP_CHECK.
type SMTPOptions struct {
	HeloName string     `json:"helo_name"`
	Hosts    []*Checker `json:"hosts,omitempty"` // legacy `host { }` sub-blocks, each with its own connection options
	// HostsOnly: the block has host sub-blocks and sets no connection
	// option of its own, so keepalived checks only the hosts (the first
	// takes the block's place) and not the real server's own address.
	HostsOnly bool `json:"hosts_only,omitempty"`
}

// DNSOptions are the options of DNS_CHECK.
type DNSOptions struct {
	Type string `json:"type"`
	Name string `json:"name"`
}

// UDPOptions are the options of UDP_CHECK.
type UDPOptions struct {
	Payload      []byte `json:"payload,omitempty"`
	RequireReply bool   `json:"require_reply"`
	MinReplyLen  int    `json:"min_reply_length,omitempty"`
	MaxReplyLen  int    `json:"max_reply_length,omitempty"`
	Reply        []byte `json:"reply_data,omitempty"`
	ReplyMask    []byte `json:"reply_mask,omitempty"`
}

// FileOptions are the options of FILE_CHECK.
type FileOptions struct {
	TrackFile string `json:"track_file"`
	Path      string `json:"file,omitempty"`   // the track_file block's file
	Weight    int    `json:"weight,omitempty"` // the FILE_CHECK's weight line, else the track_file's (default 1)
	Reverse   bool   `json:"reverse,omitempty"`
}

// BFDOptions are the options of BFD_CHECK.
type BFDOptions struct {
	Names []string `json:"bfd_names"`
}

// Diagnostic is a finding about the configuration at a place in a file.
type Diagnostic struct {
	Pos Pos
	Msg string
}

// String returns "FILE:LINE: message".
func (d Diagnostic) String() string { return d.Pos.String() + ": " + d.Msg }
