package hostinfo

import (
	"errors"
	"fmt"
	"os"
	"strconv"
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

// UDPBound reports whether a UDP socket of this network namespace is bound
// to port, process or kernel (a VXLAN device's socket has no process).
func UDPBound(port int) (bool, error) {
	for _, file := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		data, err := os.ReadFile(file)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		if udpTableHasPort(string(data), port) {
			return true, nil
		}
	}
	return false, nil
}

// udpTableHasPort says whether a /proc/net/udp table has a socket whose
// local port is port.
func udpTableHasPort(table string, port int) bool {
	lines := strings.Split(table, "\n")
	for _, line := range lines[min(1, len(lines)):] { // the first line is the header
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
			return true
		}
	}
	return false
}
