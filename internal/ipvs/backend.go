package ipvs

import (
	"context"
	"net/netip"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// Service is a virtual service as the kernel holds it.
type Service struct {
	config.ServiceKey
	Scheduler string     // rr, wrr, …
	Flags     []string   // scheduler flags (flag-1…) and "persistent", "ops"
	Timeout   uint32     // persistence timeout in seconds, 0 when not persistent
	Netmask   netip.Addr // persistence granularity
	PEName    string     // persistence engine
}

// Destination is a real server as the kernel holds it.
type Destination struct {
	Addr           netip.Addr
	Port           uint16
	Weight         int
	Method         config.Method
	Tunnel         *config.Tunnel
	UpperThreshold uint32
	LowerThreshold uint32
}

// Backend is the low-level access to an IPVS table. Implementations are
// safe for concurrent use; errors wrap the kernel's errno where there is one.
type Backend interface {
	Services(ctx context.Context) ([]Service, error)
	Destinations(ctx context.Context, svc config.ServiceKey) ([]Destination, error)
	AddService(ctx context.Context, svc Service) error
	UpdateService(ctx context.Context, svc Service) error
	DeleteService(ctx context.Context, svc config.ServiceKey) error
	AddDestination(ctx context.Context, svc config.ServiceKey, d Destination) error
	UpdateDestination(ctx context.Context, svc config.ServiceKey, d Destination) error
	DeleteDestination(ctx context.Context, svc config.ServiceKey, d Destination) error
	Close() error
}
