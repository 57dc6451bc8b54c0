package ipvs

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/lvsprobe/lvsprobe/internal/config"
)

// addrPort formats an address and port as ipvsadm does ([v6]:port).
func addrPort(a netip.Addr, port uint16) string {
	return netip.AddrPortFrom(a, port).String()
}

// ipvsadmService returns the ipvsadm options that name service k:
// "-t 198.18.0.1:80", "-u …", "--sctp-service …", "-f 7" (with -6 for
// an IPv6 fwmark service).
func ipvsadmService(k config.ServiceKey) string {
	if k.FWMark != 0 {
		s := "-f " + strconv.FormatUint(uint64(k.FWMark), 10)
		if k.Family == familyInet6 {
			s += " -6"
		}
		return s
	}
	opt := "-t"
	switch k.Protocol {
	case config.UDP:
		opt = "-u"
	case config.SCTP:
		opt = "--sctp-service"
	}
	return opt + " " + addrPort(k.Addr, k.Port)
}

// ipvsadmServiceCmd returns the ipvsadm command line that adds (-A) or
// edits (-E) service s.
func ipvsadmServiceCmd(verb string, s Service) string {
	var b strings.Builder
	b.WriteString("ipvsadm " + verb + " " + ipvsadmService(s.ServiceKey) + " -s " + s.Scheduler)
	bits := flagBits(s.Flags)
	if sf := schedFlagList(bits); len(sf) > 0 {
		b.WriteString(" -b " + strings.Join(sf, ","))
	}
	if bits&flagOnePacket != 0 {
		b.WriteString(" -o")
	}
	if bits&flagPersistent != 0 {
		b.WriteString(" -p " + strconv.FormatUint(uint64(s.Timeout), 10))
		fam := serviceID(s.ServiceKey).Family
		if s.Netmask.IsValid() && s.Netmask.Unmap() != fullMask(fam) {
			if fam == familyInet6 {
				b.WriteString(" -M " + strconv.Itoa(maskBits(s.Netmask)))
			} else {
				b.WriteString(" -M " + s.Netmask.String())
			}
		}
		if s.PEName != "" {
			b.WriteString(" --pe " + s.PEName)
		}
	}
	return b.String()
}

// ipvsadmDestCmd returns the ipvsadm command line that adds (-a) or
// edits (-e) destination d of service svc.
func ipvsadmDestCmd(verb string, svc config.ServiceKey, d Destination) string {
	var b strings.Builder
	b.WriteString("ipvsadm " + verb + " " + ipvsadmService(svc) + " -r " + addrPort(d.Addr, d.Port))
	switch d.Method {
	case config.DR:
		b.WriteString(" -g")
	case config.TUN:
		b.WriteString(" -i")
		if t := tunnelOf(d.Method, d.Tunnel); t != nil {
			b.WriteString(" --tun-type " + t.Type)
			if t.Type == "gue" {
				b.WriteString(" --tun-port " + strconv.FormatUint(uint64(t.Port), 10))
			}
			if t.Type != "ipip" {
				b.WriteString(" --tun-" + t.Checksum)
			}
		}
	default:
		b.WriteString(" -m")
	}
	b.WriteString(" -w " + strconv.Itoa(d.Weight))
	if d.UpperThreshold != 0 {
		b.WriteString(" -x " + strconv.FormatUint(uint64(d.UpperThreshold), 10))
	}
	if d.LowerThreshold != 0 {
		b.WriteString(" -y " + strconv.FormatUint(uint64(d.LowerThreshold), 10))
	}
	return b.String()
}

// maskBits returns the number of leading one bits of mask.
func maskBits(mask netip.Addr) int {
	n := 0
	for _, by := range mask.AsSlice() {
		for i := 7; i >= 0; i-- {
			if by&(1<<i) == 0 {
				return n
			}
			n++
		}
	}
	return n
}
