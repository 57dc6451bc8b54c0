package ipvs

import "github.com/lvsprobe/lvsprobe/internal/config"

// table is an IPVS table (desired or actual) keyed by serviceID.
type table map[config.ServiceKey]*tableService

// tableService is one service of a table with its destinations.
type tableService struct {
	svc   Service
	dests destMap
}

// service returns the entry for svc, creating it when absent with room
// for size destinations (a hint).
func (t table) service(svc Service, size ...int) *tableService {
	id := serviceID(svc.ServiceKey)
	ts := t[id]
	if ts == nil {
		n := 0
		if len(size) > 0 {
			n = size[0]
		}
		ts = &tableService{svc: svc, dests: make(destMap, n)}
		t[id] = ts
	}
	return ts
}
