package config

import "fmt"

// maxDepth bounds block nesting; keepalived's own grammar needs five levels.
const maxDepth = 64

// node is one statement with its optional { } block.
type node struct {
	pos      Pos
	words    []string
	raw      string
	hasBlock bool
	children []*node
}

// keyword returns the statement's first word.
func (n *node) keyword() string { return n.words[0] }

// arg returns word i, or "" when absent.
func (n *node) arg(i int) string {
	if i < len(n.words) {
		return n.words[i]
	}
	return ""
}

// treeBuilder builds the tree one logical line at a time, so that the
// lexer never holds every line of a large configuration.
type treeBuilder struct {
	d       *diags
	root    *node
	stack   []*node
	last    *node // the statement a "{" may open, nil if none
	skipped int   // depth of blocks beyond maxDepth being skipped
	skipPos Pos
}

func newTreeBuilder(d *diags) *treeBuilder {
	root := &node{}
	return &treeBuilder{d: d, root: root, stack: []*node{root}}
}

func (tb *treeBuilder) add(l line) {
	top := tb.stack[len(tb.stack)-1]
	switch {
	case l.raw == "{":
		tb.open(l, top)
		return
	case l.raw == "}":
		tb.last = nil
		switch {
		case tb.skipped > 0:
			tb.skipped--
		case len(tb.stack) == 1:
			tb.d.errorf(l.pos, "extra '}'")
		default:
			tb.stack = tb.stack[:len(tb.stack)-1]
		}
		return
	case tb.skipped > 0:
		return
	}
	n := &node{pos: l.pos, words: l.words, raw: l.raw}
	top.children = append(top.children, n)
	tb.last = n
}

// open handles a "{": it opens the block of the statement just before.
func (tb *treeBuilder) open(l line, top *node) {
	if tb.skipped > 0 {
		tb.skipped++
		return
	}
	if tb.last == nil || tb.last.hasBlock {
		tb.d.errorf(l.pos, "unexpected '{'")
		// open an anonymous block so that the matching '}' balances
		tb.last = &node{pos: l.pos, words: []string{"{"}}
		top.children = append(top.children, tb.last)
	}
	if len(tb.stack) > maxDepth {
		tb.d.errorf(l.pos, fmt.Sprintf("blocks nested deeper than %d", maxDepth))
		tb.skipped, tb.skipPos, tb.last = 1, l.pos, nil
		return
	}
	tb.last.hasBlock = true
	tb.stack = append(tb.stack, tb.last)
	tb.last = nil
}

// finish reports unclosed blocks and returns the top-level statements.
func (tb *treeBuilder) finish() []*node {
	d, stack, skipped, skipPos := tb.d, tb.stack, tb.skipped, tb.skipPos
	for i := len(stack) - 1; i > 0; i-- {
		d.errorf(stack[i].pos, fmt.Sprintf("missing '}': block %q opened here is not closed", stack[i].keyword()))
	}
	if skipped > 0 {
		d.errorf(skipPos, "missing '}': deeply nested block is not closed")
	}
	return tb.root.children
}
