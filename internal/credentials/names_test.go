package credentials

import (
	"strings"
	"testing"
)

func TestValidateUserName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" means valid
	}{
		{"simple", "alice", ""},
		{"email", "jane.doe@example.com", ""},
		{"system user", "system:kube-proxy", ""},
		{"digits first", "0day", ""},
		{"empty", "", "USER is empty"},
		{"comma", "a,b", `USER "a,b" contains a comma, which the token file uses as a separator`},
		{"newline", "a\nb", `USER "a\nb" contains a newline`},
		{"carriage return", "a\rb", `USER "a\rb" contains a newline`},
		{"tab", "a\tb", `USER "a\tb" contains a control character`},
		{"space", "jane doe", `USER "jane doe": ' ' is not allowed; use letters, digits and . _ @ : + -`},
		{"slash", "a/b", `USER "a/b": '/' is not allowed; use letters, digits and . _ @ : + -`},
		{"leading dot", ".hidden", `USER ".hidden": must start with a letter or digit`},
		{"leading dash", "-rf", `USER "-rf": must start with a letter or digit`},
		{"non-ASCII", "jörg", `USER "jörg": 'ö' is not allowed; use letters, digits and . _ @ : + -`},
		{"invalid UTF-8", "a\xffb", "USER is not valid UTF-8"},
		{"too long", strings.Repeat("a", 254), "USER is 254 bytes long; at most 253 are allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateUserName("USER", tt.in)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("ValidateUserName(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestValidateGroups(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"none", nil, ""},
		{"several", []string{"devs", "system:masters", "example.com/ops"}, ""},
		{"comma list", []string{"a,b"}, `--group "a,b": a group name cannot contain a comma; repeat the flag for several groups (--group a --group b)`},
		{"empty", []string{"devs", ""}, "--group is empty"},
		{"space", []string{"my devs"}, `--group "my devs": ' ' is not allowed in a group; use letters, digits and . _ @ : + - /`},
		{"leading colon", []string{":devs"}, `--group ":devs": must start with a letter or digit`},
		{"newline", []string{"devs\n"}, `--group "devs\n" contains a newline`},
		{"duplicate", []string{"devs", "devs"}, `--group "devs" is given twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateGroups("--group", tt.in)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("ValidateGroups(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
