package credentials

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLength bounds user and group names given on the command line.
const MaxNameLength = 253

// MastersGroup bypasses authorization entirely, RBAC included.
const MastersGroup = "system:masters"

// ValidateUserName checks a user name given on the command line (kubeseed
// token add, add-user). The syntax is stricter than what the token file
// accepts, because the name also becomes a certificate's CN and a file name:
// letters, digits and "._@:+-", starting with a letter or digit. what
// names the argument or flag in errors.
func ValidateUserName(what, name string) error {
	if err := commonNameChecks(what, name); err != nil {
		return err
	}
	if !isAlnum(rune(name[0])) {
		return fmt.Errorf("%s %q: must start with a letter or digit", what, name)
	}
	for _, r := range name {
		if !nameChar(r, false) {
			return fmt.Errorf("%s %q: %q is not allowed; use letters, digits and . _ @ : + -", what, name, r)
		}
	}
	return nil
}

// ValidateGroup checks a group name given on the command line: like a user
// name, and "/" is allowed too (example.com/devs).
func ValidateGroup(what, group string) error {
	if err := commonNameChecks(what, group); err != nil {
		if strings.Contains(group, ",") {
			return fmt.Errorf("%s %q: a group name cannot contain a comma; repeat the flag for several groups (--group a --group b)", what, group)
		}
		return err
	}
	if !isAlnum(rune(group[0])) {
		return fmt.Errorf("%s %q: must start with a letter or digit", what, group)
	}
	for _, r := range group {
		if !nameChar(r, true) {
			return fmt.Errorf("%s %q: %q is not allowed in a group; use letters, digits and . _ @ : + - /", what, group, r)
		}
	}
	return nil
}

// ValidateGroups checks each group and rejects duplicates.
func ValidateGroups(what string, groups []string) error {
	seen := map[string]bool{}
	for _, g := range groups {
		if err := ValidateGroup(what, g); err != nil {
			return err
		}
		if seen[g] {
			return fmt.Errorf("%s %q is given twice", what, g)
		}
		seen[g] = true
	}
	return nil
}

// commonNameChecks gives the specific errors users most likely hit.
func commonNameChecks(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s is empty", what)
	case !utf8.ValidString(name):
		return fmt.Errorf("%s is not valid UTF-8", what)
	case strings.ContainsAny(name, "\n\r"):
		return fmt.Errorf("%s %q contains a newline", what, name)
	case hasControl(name):
		return fmt.Errorf("%s %q contains a control character", what, name)
	case strings.Contains(name, ","):
		return fmt.Errorf("%s %q contains a comma, which the token file uses as a separator", what, name)
	case len(name) > MaxNameLength:
		return fmt.Errorf("%s is %d bytes long; at most %d are allowed", what, len(name), MaxNameLength)
	}
	return nil
}

func isAlnum(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

func nameChar(r rune, group bool) bool {
	switch {
	case isAlnum(r), strings.ContainsRune("._@:+-", r):
		return true
	case group && r == '/':
		return true
	}
	return false
}
