package config

import (
	"sort"
	"strconv"
	"strings"
)

// Error is returned by Load and Parse when the configuration is invalid.
// It holds every error found, in file order, not just the first.
type Error struct {
	Diagnostics []Diagnostic
}

// Error returns the diagnostics as "FILE:LINE: message", one per line.
func (e *Error) Error() string {
	var b strings.Builder
	for i, d := range e.Diagnostics {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.String())
	}
	return b.String()
}

// maxDiagnostics bounds the findings kept for one load, so that garbage
// input cannot make the report itself unbounded.
const maxDiagnostics = 1000

// diags collects the errors and warnings of one load.
type diags struct {
	errs     []Diagnostic
	warns    []Diagnostic
	dropped  int
	lastPos  Pos
	anyError bool
}

func (d *diags) errorf(p Pos, msg string) {
	d.anyError = true
	d.lastPos = p
	if len(d.errs) >= maxDiagnostics {
		d.dropped++
		return
	}
	d.errs = append(d.errs, Diagnostic{Pos: p, Msg: msg})
}

func (d *diags) warnf(p Pos, msg string) {
	if len(d.warns) >= maxDiagnostics {
		return
	}
	d.warns = append(d.warns, Diagnostic{Pos: p, Msg: msg})
}

// err returns the collected errors as an *Error, or nil when there are none.
func (d *diags) err() error {
	if !d.anyError {
		return nil
	}
	list := append([]Diagnostic(nil), d.errs...)
	if d.dropped > 0 {
		list = append(list, Diagnostic{Pos: d.lastPos, Msg: "too many errors; " + strconv.Itoa(d.dropped) + " more not shown"})
	}
	return &Error{Diagnostics: list}
}

// sort orders the findings by file (in the order files were read) and line.
func (d *diags) sort(files []string) {
	rank := map[string]int{}
	for i, f := range files {
		if _, ok := rank[f]; !ok {
			rank[f] = i
		}
	}
	less := func(list []Diagnostic) func(i, j int) bool {
		return func(i, j int) bool {
			a, b := list[i].Pos, list[j].Pos
			if a.File != b.File {
				return rank[a.File] < rank[b.File]
			}
			return a.Line < b.Line
		}
	}
	sort.SliceStable(d.errs, less(d.errs))
	sort.SliceStable(d.warns, less(d.warns))
}
