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
	endPos   Pos // the closing brace, when hasBlock
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

// buildTree groups logical lines into statements and blocks. A "{" opens
// the block of the statement just before it; unbalanced braces are errors.
func buildTree(lines []line, d *diags) []*node {
	root := &node{}
	stack := []*node{root}
	var last *node // the statement a "{" may open, nil if none
	skipped := 0   // depth of blocks beyond maxDepth being skipped
	var skipPos Pos
	for _, l := range lines {
		top := stack[len(stack)-1]
		switch l.words[0] {
		case "{":
			if l.raw != "{" {
				break
			}
			if skipped > 0 {
				skipped++
				continue
			}
			if last == nil || last.hasBlock {
				d.errorf(l.pos, "unexpected '{'")
				// open an anonymous block so that the matching '}' balances
				last = &node{pos: l.pos, words: []string{"{"}}
				top.children = append(top.children, last)
			}
			if len(stack) > maxDepth {
				d.errorf(l.pos, fmt.Sprintf("blocks nested deeper than %d", maxDepth))
				skipped, skipPos = 1, l.pos
				last = nil
				continue
			}
			last.hasBlock = true
			stack = append(stack, last)
			last = nil
			continue
		case "}":
			if l.raw != "}" {
				break
			}
			last = nil
			if skipped > 0 {
				skipped--
				continue
			}
			if len(stack) == 1 {
				d.errorf(l.pos, "extra '}'")
				continue
			}
			top.endPos = l.pos
			stack = stack[:len(stack)-1]
			continue
		}
		if skipped > 0 {
			continue
		}
		n := &node{pos: l.pos, words: l.words, raw: l.raw}
		top.children = append(top.children, n)
		last = n
	}
	_ = skipPos
	for i := len(stack) - 1; i > 0; i-- {
		d.errorf(stack[i].pos, fmt.Sprintf("missing '}': block %q opened here is not closed", stack[i].keyword()))
	}
	if skipped > 0 {
		d.errorf(skipPos, "missing '}': deeply nested block is not closed")
	}
	return root.children
}
