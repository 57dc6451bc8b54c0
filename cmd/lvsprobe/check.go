package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/lvsprobe/lvsprobe/internal/config"
	"github.com/lvsprobe/lvsprobe/internal/prober"
)

// defaultConfigPath is where keepalived reads its configuration.
const defaultConfigPath = "/etc/keepalived/keepalived.conf"

func init() {
	register(command{name: "check", summary: "validate the LVS part of a keepalived.conf (--dump prints it as JSON)", run: cmdCheck})
}

func cmdCheck(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	file := fs.String("f", defaultConfigPath, "keepalived configuration `file`")
	id := fs.String("config-id", "", "configuration `id` selecting @ID lines, as keepalived -i (default: the short host name)")
	dump := fs.Bool("dump", false, "print the resolved topology as JSON")
	fs.Usage = func() {
		fmt.Fprintln(e.stderr, "usage: lvsprobe check [-f FILE] [--config-id ID] [--dump]")
		fs.PrintDefaults()
	}
	if stop, err := parseArgs(fs, args); stop {
		return err
	}
	cfg, err := config.Load(*file, config.LoadOptions{ConfigID: *id, Log: e.log})
	if err != nil {
		var ce *config.Error
		if !errors.As(err, &ce) {
			return fmt.Errorf("load %s: %w", *file, err)
		}
		for _, d := range ce.Diagnostics {
			fmt.Fprintln(e.stderr, d.String())
		}
		fmt.Fprintf(e.stderr, "%s: invalid: %d error(s)\n", *file, len(ce.Diagnostics))
		return &exitError{code: 1}
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(e.stderr, "%s: warning: %s\n", w.Pos, w.Msg)
	}
	if errs := prober.Unsupported(cfg); len(errs) > 0 {
		for _, err := range errs {
			fmt.Fprintln(e.stderr, err)
		}
		fmt.Fprintf(e.stderr, "%s: invalid: %d error(s)\n", *file, len(errs))
		return &exitError{code: 1}
	}
	if !*dump {
		fmt.Fprintf(e.stdout, "%s: valid: %d virtual servers, %d real servers\n", *file, len(cfg.VirtualServers), countRS(cfg))
		return nil
	}
	if err := writeDump(e.stdout, cfg); err != nil {
		return fmt.Errorf("write dump: %w", err)
	}
	return nil
}

// writeDump prints the resolved topology as one JSON object. Virtual
// servers are encoded one at a time, so a large configuration is never
// held twice in memory.
func writeDump(w io.Writer, cfg *config.Config) error {
	bw := bufio.NewWriter(w)
	head := struct {
		Files    []string                              `json:"files"`
		Global   config.Global                         `json:"global"`
		Groups   map[string]*config.VirtualServerGroup `json:"groups,omitempty"`
		Warnings []string                              `json:"warnings,omitempty"`
	}{Files: cfg.Files, Global: cfg.Global, Groups: cfg.Groups}
	for _, d := range cfg.Warnings {
		head.Warnings = append(head.Warnings, d.String())
	}
	b, err := json.MarshalIndent(head, "", "  ")
	if err != nil {
		return err
	}
	// reopen the object to append the virtual servers
	bw.Write(b[:len(b)-2])
	bw.WriteString(",\n  \"virtual_servers\": [")
	for i, vs := range cfg.VirtualServers {
		if i > 0 {
			bw.WriteByte(',')
		}
		b, err := json.MarshalIndent(vs, "    ", "  ")
		if err != nil {
			return err
		}
		bw.WriteString("\n    ")
		bw.Write(b)
	}
	bw.WriteString("\n  ]\n}\n")
	return bw.Flush()
}

func countRS(cfg *config.Config) int {
	n := 0
	for _, vs := range cfg.VirtualServers {
		n += len(vs.RealServers)
	}
	return n
}
