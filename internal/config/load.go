package config

import (
	"io"
	"log/slog"
	"path/filepath"
)

// LoadOptions control how a configuration is read.
type LoadOptions struct {
	ConfigID string       // keepalived's -i: selects `@ID` lines and drops `@^ID` lines; empty means the short host name, as in keepalived
	Log      *slog.Logger // informational messages (skipped VRRP blocks); nil discards them
}

func (o LoadOptions) logger() *slog.Logger {
	if o.Log != nil {
		return o.Log
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Load reads the keepalived.conf at path, with its includes, and returns
// the resolved topology of its LVS part. When the configuration is invalid
// it returns a nil Config and an *Error listing every problem found.
// Warnings of a valid configuration are in Config.Warnings.
func Load(path string, opts LoadOptions) (*Config, error) {
	d := &diags{}
	lx := newLexer(d, opts.ConfigID)
	tb := newTreeBuilder(d)
	lx.sink = tb.add
	lx.readFile(Pos{File: path, Line: 0}, path)
	return finish(lx, tb, d, opts)
}

// Parse is Load for a configuration held in memory; name is used in
// diagnostics, and includes are resolved relative to its directory.
func Parse(name string, data []byte, opts LoadOptions) (*Config, error) {
	d := &diags{}
	lx := newLexer(d, opts.ConfigID)
	tb := newTreeBuilder(d)
	lx.sink = tb.add
	abs, err := filepath.Abs(name)
	if err != nil {
		abs = name
	}
	if len(data) > maxFileSize {
		d.errorf(Pos{File: name}, "configuration is larger than the limit")
		return nil, d.err()
	}
	lx.lexData(name, abs, data)
	return finish(lx, tb, d, opts)
}

func finish(lx *lexer, tb *treeBuilder, d *diags, opts LoadOptions) (*Config, error) {
	tree := tb.finish()
	p := &parser{d: d, log: opts.logger(), cfg: &Config{Files: lx.files, Groups: map[string]*VirtualServerGroup{}},
		trackFiles: map[string]bool{}, bfds: map[string]bool{}}
	p.top(tree)
	p.resolveAll()
	for _, vs := range p.cfg.VirtualServers {
		vs.id = vs.makeID()
	}
	d.sort(lx.files)
	if err := d.err(); err != nil {
		return nil, err
	}
	p.cfg.Warnings = d.warns
	return p.cfg, nil
}
