package ipvs

import (
	"context"
	"net/netip"
	"testing"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// benchConfig returns nVS virtual servers with nRS NAT real servers
// each (no checkers: alive from the start). weightBump adds 1 to the
// weight of the first real server of every virtual server, which is 1%
// of the real servers when nRS is 100.
func benchConfig(nVS, nRS int, weightBump bool) *config.Config {
	cfg := &config.Config{}
	for v := range nVS {
		vip := netip.AddrFrom4([4]byte{198, 18, byte(v >> 8), byte(v)})
		vs := &config.VirtualServer{
			Addr: vip, Port: 80, Family: "inet", Protocol: config.TCP,
			Services:  []config.ServiceKey{{Protocol: config.TCP, Addr: vip, Port: 80, Family: "inet"}},
			Scheduler: "wlc", Method: config.NAT, Quorum: 1,
		}
		for r := range nRS {
			rs := &config.RealServer{
				Addr: netip.AddrFrom4([4]byte{198, 19, byte(r >> 8), byte(r)}), Port: uint16(8000 + v%1000),
				Weight: 1, Method: config.NAT,
			}
			if weightBump && r == 0 {
				rs.Weight = 2
			}
			vs.RealServers = append(vs.RealServers, rs)
		}
		cfg.VirtualServers = append(cfg.VirtualServers, vs)
	}
	return cfg
}

// convergedDryRun returns a dry-run reconciler that has made its first
// pass over benchConfig(nVS, nRS, false), with that config: the starting
// point of the per-pass benchmarks.
func convergedDryRun(b *testing.B, nVS, nRS int) (*Reconciler, *config.Config) {
	b.Helper()
	cfg := benchConfig(nVS, nRS, false)
	r := NewReconciler(NewDryRun(nil, nil), cfg, ReconcilerOptions{})
	if err := r.Reconcile(context.Background()); err != nil {
		b.Fatal(err)
	}
	return r, cfg
}

// benchBackend is a backend to benchmark against and its teardown.
type benchBackend struct {
	name string
	open func(b *testing.B) (Backend, func())
}

func benchBackends() []benchBackend {
	return []benchBackend{
		{"dry-run", func(*testing.B) (Backend, func()) { return NewDryRun(nil, nil), func() {} }},
		{"kernel", openBenchKernel},
	}
}

// reportCalls reports backend calls (reads + writes) and writes per op.
func reportCalls(b *testing.B, st Stats) {
	b.ReportMetric(float64(st.Reads+st.Writes())/float64(b.N), "calls/op")
	b.ReportMetric(float64(st.Writes())/float64(b.N), "writes/op")
}

// BenchmarkReconcileFromEmpty: one pass that builds 100 services × 100
// destinations (10,000) from an empty table.
func BenchmarkReconcileFromEmpty(b *testing.B) {
	cfg := benchConfig(100, 100, false)
	for _, bb := range benchBackends() {
		b.Run(bb.name, func(b *testing.B) {
			var total Stats
			total.Ops = map[OpKind]uint64{}
			for range b.N {
				b.StopTimer()
				be, closeFn := bb.open(b)
				r := NewReconciler(be, cfg, ReconcilerOptions{})
				b.StartTimer()
				if err := r.Reconcile(context.Background()); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				st := r.Stats()
				if got := st.Ops[OpAddDestination]; got != 10_000 {
					b.Fatalf("added %d destinations, want 10000", got)
				}
				total.Reads += st.Reads
				for k, v := range st.Ops {
					total.Ops[k] += v
				}
				closeFn()
				b.StartTimer()
			}
			reportCalls(b, total)
		})
	}
}

// BenchmarkReload37k: a converged table of 370 services × 100 real
// servers (37,000); each op is a reload where 1% of the real servers
// changed weight, then one pass: "apply" is what Run does on SIGHUP (no
// read of the table), "reconcile" also reads the whole owned table.
// Writes must be exactly the 370 changes.
func BenchmarkReload37k(b *testing.B) {
	cfgs := []*config.Config{benchConfig(370, 100, false), benchConfig(370, 100, true)}
	for _, bb := range benchBackends() {
		for _, mode := range []string{"apply", "reconcile"} {
			b.Run(bb.name+"/"+mode, func(b *testing.B) {
				be, closeFn := bb.open(b)
				defer closeFn()
				ctx := context.Background()
				r := NewReconciler(be, cfgs[0], ReconcilerOptions{})
				pass := r.Reconcile
				if mode == "apply" {
					pass = r.Apply
				}
				if err := r.Reconcile(ctx); err != nil {
					b.Fatal(err)
				}
				before := r.Stats()
				b.ResetTimer()
				for i := range b.N {
					r.Update(cfgs[(i+1)%2])
					if err := pass(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				after := r.Stats()
				writes := after.Writes() - before.Writes()
				if want := uint64(370 * b.N); writes != want || after.Ops[OpUpdateDestination]-before.Ops[OpUpdateDestination] != want {
					b.Fatalf("reload wrote %d times (%v), want %d destination edits", writes, after.Ops, want)
				}
				reportCalls(b, Stats{Reads: after.Reads - before.Reads, Ops: map[OpKind]uint64{OpUpdateDestination: writes}})
			})
		}
	}
}
