package credentials

import (
	"fmt"
)

// BasicAuthFile is the legacy static password file, MicroK8s's
// credentials/basic_auth.csv. kube-apiserver removed password
// authentication in v1.19; kubeseed migrates its users to tokens.
const BasicAuthFile = "basic_auth.csv"

// PasswordUser is one line of a static password file:
// password,user,uid[,"group1,group2"]. The password itself is never kept:
// migrated users get a new random token.
type PasswordUser struct {
	User   string
	UID    string
	Groups []string
	Line   int
}

var basicAuthFormat = csvFormat{
	header:     "password,user,uid[,groups]",
	commentWhy: "a \"#\" line is read as a password",
}

// ParseBasicAuth parses a static password file; path is used only in
// errors, which never include a password. A user defined twice is an
// error, since it is ambiguous which groups the token should get.
func ParseBasicAuth(path string, data []byte) ([]PasswordUser, error) {
	var users []PasswordUser
	firstLine := map[string]int{}
	err := readRecords(path, data, basicAuthFormat, func(rec []string, line func(int) int) error {
		if err := checkIdentity(path, rec, line); err != nil {
			return err
		}
		u := PasswordUser{User: rec[1], UID: rec[2], Line: line(0)}
		if first, dup := firstLine[u.User]; dup {
			return fmt.Errorf("%s:%d: user %q is defined twice (first on line %d)", path, line(1), u.User, first)
		}
		firstLine[u.User] = u.Line
		groups, err := groupsColumn(path, rec, line)
		if err != nil {
			return err
		}
		u.Groups = groups
		users = append(users, u)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return users, nil
}
