package hostinfo

import "testing"

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"32768\t60999\n", 32768, 60999, true},
		{"1024 65535", 1024, 65535, true},
		{"", 0, 0, false},
		{"60999 32768", 0, 0, false},
		{"0 100", 0, 0, false},
		{"abc def", 0, 0, false},
	}
	for _, tt := range tests {
		lo, hi, err := ParsePortRange(tt.in)
		if (err == nil) != tt.ok || lo != tt.lo || hi != tt.hi {
			t.Errorf("ParsePortRange(%q) = %d, %d, %v", tt.in, lo, hi, err)
		}
	}
}

func TestUDPTableHasPort(t *testing.T) {
	// A kernel VXLAN socket on 4789 (inode 0) and a process socket on 53.
	table := "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
		"  12: 00000000:12B5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 0 2 0000000000000000 0\n" +
		"  40: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 31337 2 0000000000000000 0\n"
	tests := []struct {
		table string
		port  int
		want  bool
	}{
		{table, 4789, true},
		{table, 53, true},
		{table, 8472, false},
		{"", 4789, false},
		{"header only\n", 4789, false},
		{"h\n 1: garbage\n 2: 00000000:zz 0\n", 4789, false},
	}
	for _, tt := range tests {
		if got := udpTableHasPort(tt.table, tt.port); got != tt.want {
			t.Errorf("udpTableHasPort(%q, %d) = %v, want %v", tt.table, tt.port, got, tt.want)
		}
	}
}
