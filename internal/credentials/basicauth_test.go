package credentials

import (
	"reflect"
	"strings"
	"testing"
)

const basicAuthPath = "/x/credentials/basic_auth.csv"

func TestParseBasicAuth(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []PasswordUser
	}{
		{"empty", "", nil},
		{"three columns", "pw,alice,1\n", []PasswordUser{{User: "alice", UID: "1", Line: 1}}},
		{"groups", "\npw,bob,2,\"devs,system:masters\"\n", []PasswordUser{
			{User: "bob", UID: "2", Groups: []string{"devs", "system:masters"}, Line: 2},
		}},
		{"password with spaces and quotes", "\"p w\"\"x\",carol,3,ops\r\n", []PasswordUser{
			{User: "carol", UID: "3", Groups: []string{"ops"}, Line: 1},
		}},
		{"empty password", ",dave,4\n", []PasswordUser{{User: "dave", UID: "4", Line: 1}}},
		{"same password twice", "pw,a,1\npw,b,2\n", []PasswordUser{
			{User: "a", UID: "1", Line: 1}, {User: "b", UID: "2", Line: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBasicAuth(basicAuthPath, []byte(tt.in))
			if err != nil {
				t.Fatalf("ParseBasicAuth: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseBasicAuthErrors(t *testing.T) {
	const secret = "PASSWORDVALUE"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"comment", "# password,user,uid\n", basicAuthPath + `:1: comments are not allowed: a "#" line is read as a password`},
		{"two columns", secret + ",alice\n", basicAuthPath + ":1: expected 3 or 4 columns (password,user,uid[,groups]), got 2"},
		{"five columns", secret + ",alice,1,g,x\n", basicAuthPath + ":1: expected 3 or 4 columns (password,user,uid[,groups]), got 5"},
		{"empty user", "pw,alice,1\n" + secret + ",,1\n", basicAuthPath + ":2: empty user"},
		{"user with newline", secret + ",\"a\nb\",1\n", basicAuthPath + ":1: user contains a control character"},
		{"duplicate user", secret + ",alice,1\nx,bob,2\ny,alice,3\n", basicAuthPath + `:3: user "alice" is defined twice (first on line 1)`},
		{"empty group", secret + ",alice,1,\"a,,b\"\n", basicAuthPath + ":1: groups column \"a,,b\": group 2 is empty"},
		{"bad quote", secret + ",al\"ice,1\n", basicAuthPath + ":1: column 17: bare \" in non-quoted-field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseBasicAuth(basicAuthPath, []byte(tt.in))
			if err == nil {
				t.Fatalf("ParseBasicAuth succeeded with %+v, want %q", got, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q\nwant    %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func FuzzParseBasicAuth(f *testing.F) {
	for _, s := range []string{
		"",
		"pw,alice,1\n",
		"pw,bob,2,\"devs,system:masters\"\n",
		"\"p,w\",carol,3,ops\r\n",
		"# comment\n",
		"pw,alice,1\npw,alice,2\n",
		"pw,,1\n",
		"pw,\"a\nb\",1\n",
		"pw,u\"x,1\n",
		"pw,u,1,\"a,\"\n",
		",0 ,0", // a user with a space
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		users, err := ParseBasicAuth(basicAuthPath, data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), basicAuthPath+":") {
				t.Fatalf("error without path:line: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, u := range users {
			if u.User == "" || u.Line < 1 || seen[u.User] || hasControl(u.User) || hasControl(u.UID) {
				t.Fatalf("accepted invalid user %+v", u)
			}
			seen[u.User] = true
			for _, g := range u.Groups {
				if g == "" || hasControl(g) {
					t.Fatalf("accepted invalid group %q of %+v", g, u)
				}
			}
			// Every accepted user must become a valid token line.
			tok := Token{Token: "tok", User: u.User, UID: u.UID, Groups: u.Groups}
			if _, err := ParseTokens(tokensPath, FormatTokens([]Token{tok})); err != nil {
				t.Fatalf("user %+v does not make a valid token line: %v", u, err)
			}
		}
	})
}
