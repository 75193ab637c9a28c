package hostinfo

import (
	"fmt"
	"os"
	"strings"
)

// EphemeralPortsFile is where Linux keeps the range it picks outgoing ports from.
const EphemeralPortsFile = "/proc/sys/net/ipv4/ip_local_port_range"

// EphemeralRange returns the kernel's range for outgoing ports. A listener in
// that range can find its port taken by any outgoing connection.
func EphemeralRange() (lo, hi int, err error) {
	b, err := os.ReadFile(EphemeralPortsFile)
	if err != nil {
		return 0, 0, err
	}
	return ParsePortRange(string(b))
}

// ParsePortRange parses the "low high" text of ip_local_port_range.
func ParsePortRange(s string) (lo, hi int, err error) {
	if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d %d", &lo, &hi); err != nil {
		return 0, 0, fmt.Errorf("%s: %q is not \"low high\": %w", EphemeralPortsFile, s, err)
	}
	if lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("%s: %q is not a port range", EphemeralPortsFile, s)
	}
	return lo, hi, nil
}
