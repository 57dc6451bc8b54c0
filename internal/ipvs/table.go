package ipvs

import "github.com/lvsprobe/lvsprobe/internal/config"

// table is an IPVS table (desired or actual) keyed by serviceID.
type table map[config.ServiceKey]*tableService

// tableService is one service of a table with its destinations.
type tableService struct {
	svc   Service
	dests map[destKey]Destination
}

// service returns the entry for k, creating it with svc when absent.
func (t table) service(svc Service) *tableService {
	id := serviceID(svc.ServiceKey)
	ts := t[id]
	if ts == nil {
		ts = &tableService{svc: svc, dests: make(map[destKey]Destination)}
		t[id] = ts
	}
	return ts
}
