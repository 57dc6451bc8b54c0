package config

// trackFileDef is a top-level `track_file NAME { file PATH; weight W
// [reverse] }` block, the part FILE_CHECK uses (init_file is left to
// keepalived's VRRP side, which writes the file).
type trackFileDef struct {
	path    string
	weight  int
	reverse bool
}

// trackFile records a track_file / vrrp_track_file block. keepalived
// drops one without a file line, so a FILE_CHECK naming it is then "not
// found".
func (p *parser) trackFile(b *node) {
	d := trackFileDef{weight: 1}
	for _, n := range b.children {
		switch n.keyword() {
		case "file":
			if d.path == "" && len(n.words) > 1 {
				d.path = n.arg(1)
			}
		case "weight":
			if v, err := parseInt(n.arg(1), -254, 254); err == nil {
				d.weight = int(v)
				d.reverse = n.arg(2) == "reverse"
			}
		}
	}
	if d.path == "" {
		delete(p.trackFiles, b.arg(1))
		return
	}
	if p.trackFileDefs == nil {
		p.trackFileDefs = map[string]trackFileDef{}
	}
	p.trackFileDefs[b.arg(1)] = d
}
