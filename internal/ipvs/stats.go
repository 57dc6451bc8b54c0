package ipvs

import "maps"

// OpKind names a write to an IPVS table.
type OpKind string

// The writes a reconciler issues, by the ipvsadm command they match.
const (
	OpAddService        OpKind = "add_service"        // ipvsadm -A
	OpUpdateService     OpKind = "update_service"     // ipvsadm -E
	OpDeleteService     OpKind = "delete_service"     // ipvsadm -D
	OpAddDestination    OpKind = "add_destination"    // ipvsadm -a
	OpUpdateDestination OpKind = "update_destination" // ipvsadm -e
	OpDeleteDestination OpKind = "delete_destination" // ipvsadm -d
	OpSetTimeouts       OpKind = "set_timeouts"       // ipvsadm --set
)

// Stats counts what a Reconciler has done since it was made.
type Stats struct {
	Passes   uint64            // reconcile passes run (complete or not)
	Partial  uint64            // of Passes, those that built only the virtual servers whose health or weight changed (Apply)
	Reads    uint64            // backend reads: Services and Destinations calls
	Ops      map[OpKind]uint64 // successful writes by kind
	Errors   uint64            // failed backend calls, reads and writes
	Races    uint64            // writes that met EEXIST/ENOENT (someone else changed the table) and were absorbed
	Deferred uint64            // writes not tried because their target was backing off
	Pending  int               // targets now backing off after an error
}

// Writes returns the number of successful writes of every kind.
func (s Stats) Writes() uint64 {
	var n uint64
	for _, v := range s.Ops {
		n += v
	}
	return n
}

// clone returns a deep copy of s.
func (s Stats) clone() Stats {
	s.Ops = maps.Clone(s.Ops)
	if s.Ops == nil {
		s.Ops = map[OpKind]uint64{}
	}
	return s
}
