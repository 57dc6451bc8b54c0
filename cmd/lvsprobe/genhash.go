package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/prober"
)

func init() {
	register(command{name: "genhash", summary: "print the digest line of a url, as keepalived's genhash", run: cmdGenhash})
}

// genhashFlags are the flags of genhash, named as keepalived's genhash
// names them (each also has its long form).
type genhashFlags struct {
	server  string
	port    uint
	url     string
	ssl     bool
	vhost   string
	sni     string
	proto   string
	fwmark  uint
	timeout float64
	verbose bool
}

func (g *genhashFlags) register(fs *flag.FlagSet) {
	for _, n := range []string{"s", "server"} {
		fs.StringVar(&g.server, n, "", "real server `address` (required)")
	}
	for _, n := range []string{"p", "port"} {
		fs.UintVar(&g.port, n, 0, "`port` (default 80, or 443 with -S)")
	}
	for _, n := range []string{"u", "url"} {
		fs.StringVar(&g.url, n, "/", "url `path`")
	}
	for _, n := range []string{"S", "use-ssl"} {
		fs.BoolVar(&g.ssl, n, false, "use TLS (SSL_GET)")
	}
	for _, n := range []string{"V", "use-virtualhost"} {
		fs.StringVar(&g.vhost, n, "", "virtual `host` for the Host header (and SNI with -I \"\")")
	}
	for _, n := range []string{"I", "sni"} {
		fs.StringVar(&g.sni, n, "", "send SNI with this server `name` (with -S)")
	}
	for _, n := range []string{"r", "P", "protocol"} {
		fs.StringVar(&g.proto, n, "1.0", "http_protocol: `1.0`, 1.0C or 1.1")
	}
	for _, n := range []string{"m", "fwmark"} {
		fs.UintVar(&g.fwmark, n, 0, "firewall `mark` of the check's packets (SO_MARK)")
	}
	for _, n := range []string{"t", "timeout"} {
		fs.Float64Var(&g.timeout, n, config.DefaultConnectTimeout.Seconds(), "connect_timeout in `seconds`, bounding the whole exchange")
	}
	for _, n := range []string{"v", "verbose"} {
		fs.BoolVar(&g.verbose, n, false, "print the request and the response header on stderr")
	}
}

// checker turns the flags into the HTTP_GET or SSL_GET block the digest is
// meant for.
func (g *genhashFlags) checker() (*config.Checker, error) {
	addr, err := netip.ParseAddr(g.server)
	if err != nil {
		return nil, fmt.Errorf("-s %q: need an IP address: %w", g.server, err)
	}
	if g.port > 65535 {
		return nil, fmt.Errorf("-p %d: not a port", g.port)
	}
	if g.fwmark > 1<<32-1 {
		return nil, fmt.Errorf("-m %d: not a firewall mark", g.fwmark)
	}
	if g.timeout <= 0 {
		return nil, fmt.Errorf("-t %v: not a positive number of seconds", g.timeout)
	}
	c := &config.Checker{
		Pos:            config.Pos{File: "genhash"},
		Type:           config.HTTPGet,
		ConnectIP:      addr,
		ConnectPort:    uint16(g.port),
		ConnectTimeout: time.Duration(g.timeout * float64(time.Second)),
		FWMark:         uint32(g.fwmark),
		HTTP: &config.HTTPOptions{
			Protocol:    g.proto,
			VirtualHost: g.vhost,
			URLs:        []*config.URL{{Pos: config.Pos{File: "genhash"}, Path: g.url, VirtualHost: g.vhost}},
		},
	}
	if g.ssl {
		c.Type = config.SSLGet
		c.HTTP.EnableSNI, c.HTTP.SNIName = g.sni != "", g.sni
	}
	if c.ConnectPort == 0 {
		c.ConnectPort = 80
		if g.ssl {
			c.ConnectPort = 443
		}
	}
	return c, nil
}

func cmdGenhash(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("genhash", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var g genhashFlags
	g.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: lvsprobe genhash -s ADDRESS [-p PORT] [-u PATH] [-S] [-V HOST] [-I SNI] [-r 1.0|1.0C|1.1] [-m MARK] [-t SECONDS] [-v]")
		fmt.Fprintln(e.stderr, "Fetches the url as HTTP_GET (or SSL_GET with -S) would and prints the line to paste into its url block: digest HEX")
		fs.PrintDefaults()
	}
	if stop, err := parseArgs(fs, args); stop {
		return err
	}
	if g.server == "" {
		fs.Usage()
		return &exitError{code: 2}
	}
	c, err := g.checker()
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	res, err := prober.FetchURLs(ctx, c, prober.CheckerOptions{})
	if err != nil {
		return fmt.Errorf("%s %s: %w", c.Type, netip.AddrPortFrom(c.ConnectIP, c.ConnectPort), err)
	}
	r := res[0]
	if g.verbose {
		for _, l := range strings.SplitAfter(strings.TrimRight(string(r.Request), "\r\n"), "\n") {
			fmt.Fprintf(e.stderr, "> %s\n", strings.TrimRight(l, "\r\n"))
		}
		fmt.Fprintf(e.stderr, "< %s %d %s\n", r.Proto, r.Status, r.Reason)
		for _, h := range r.Header {
			fmt.Fprintf(e.stderr, "< %s: %s\n", h.Name, h.Value)
		}
		fmt.Fprintf(e.stderr, "body: %d bytes\n", r.BodyBytes)
	}
	if r.Status < config.DefaultStatusCodeLow || r.Status > config.DefaultStatusCodeHigh {
		fmt.Fprintf(e.stderr, "warning: status %d is outside the default status_code %d-%d\n",
			r.Status, config.DefaultStatusCodeLow, config.DefaultStatusCodeHigh)
	}
	_, err = fmt.Fprintf(e.stdout, "digest %s\n", r.Digest)
	return err
}
