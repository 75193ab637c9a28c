package args

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

const testPath = "/x/args/kube-apiserver"

const sampleFile = `# kube-apiserver arguments
--secure-port=16443

--anonymous-auth
--client-ca-file=${SNAP_DATA}/certs/ca.crt
  --service-cluster-ip-range 10.152.183.0/24
--admission-control-config-file="/etc/my dir/admission.yaml"
--token-auth-file='${SNAP_DATA}/credentials/known_tokens.csv'
--feature-gates=
# repeated slice flags are allowed
--tls-cipher-suites=TLS_AES_128_GCM_SHA256
--tls-cipher-suites=TLS_AES_256_GCM_SHA384
`

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Arg
	}{
		{"empty", "", nil},
		{"comments only", "# a\n\n   \n  # b\n", nil},
		{"no trailing newline", "--v=2", []Arg{{Name: "v", Value: "2", HasValue: true, Line: 1}}},
		{"bare flag", "--anonymous-auth\n", []Arg{{Name: "anonymous-auth", Line: 1}}},
		{"empty value", "--x=\n", []Arg{{Name: "x", HasValue: true, Line: 1}}},
		{"empty quoted value", "--x=\"\"\n", []Arg{{Name: "x", HasValue: true, Line: 1}}},
		{"space form", "--x   a b  \n", []Arg{{Name: "x", Value: "a b", HasValue: true, Line: 1}}},
		{"tab form", "--x\tval\n", []Arg{{Name: "x", Value: "val", HasValue: true, Line: 1}}},
		{"double quotes", `--x="a b"`, []Arg{{Name: "x", Value: "a b", HasValue: true, Line: 1}}},
		{"single quotes", `--x='a "b"'`, []Arg{{Name: "x", Value: `a "b"`, HasValue: true, Line: 1}}},
		{"inner quote kept", `--x=a"b`, []Arg{{Name: "x", Value: `a"b`, HasValue: true, Line: 1}}},
		{"equals in value", "--x=a=b", []Arg{{Name: "x", Value: "a=b", HasValue: true, Line: 1}}},
		{"hash is part of value", "--x=a # not a comment", []Arg{{Name: "x", Value: "a # not a comment", HasValue: true, Line: 1}}},
		{"dots and underscores", "--v1.x_y-z=1", []Arg{{Name: "v1.x_y-z", Value: "1", HasValue: true, Line: 1}}},
		{"crlf", "# c\r\n--a=1\r\n--b\r\n", []Arg{
			{Name: "a", Value: "1", HasValue: true, Line: 2},
			{Name: "b", Line: 3},
		}},
		{"bom", "\ufeff--a=1\n", []Arg{{Name: "a", Value: "1", HasValue: true, Line: 1}}},
		{"duplicates", "--a=1\n--a=2\n", []Arg{
			{Name: "a", Value: "1", HasValue: true, Line: 1},
			{Name: "a", Value: "2", HasValue: true, Line: 2},
		}},
		{"sample", sampleFile, []Arg{
			{Name: "secure-port", Value: "16443", HasValue: true, Line: 2},
			{Name: "anonymous-auth", Line: 4},
			{Name: "client-ca-file", Value: "${SNAP_DATA}/certs/ca.crt", HasValue: true, Line: 5},
			{Name: "service-cluster-ip-range", Value: "10.152.183.0/24", HasValue: true, Line: 6},
			{Name: "admission-control-config-file", Value: "/etc/my dir/admission.yaml", HasValue: true, Line: 7},
			{Name: "token-auth-file", Value: "${SNAP_DATA}/credentials/known_tokens.csv", HasValue: true, Line: 8},
			{Name: "feature-gates", HasValue: true, Line: 9},
			{Name: "tls-cipher-suites", Value: "TLS_AES_128_GCM_SHA256", HasValue: true, Line: 11},
			{Name: "tls-cipher-suites", Value: "TLS_AES_256_GCM_SHA384", HasValue: true, Line: 12},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(testPath, []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if f.Path != testPath {
				t.Errorf("Path = %q", f.Path)
			}
			if got := f.Args(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Args() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"no dashes", "# c\n\nfoo\n", testPath + `:3: expected a flag starting with "--", got "foo"`},
		{"single dash", "-v=2", testPath + `:1: expected a flag starting with "--", got "-v=2"`},
		{"bare dashes", "--a\n--", testPath + `:2: missing flag name`},
		{"no name", "--=1", testPath + `:1: missing flag name`},
		{"space after dashes", "-- a", testPath + `:1: missing flag name`},
		{"triple dash", "---a", testPath + `:1: invalid flag name "-a"`},
		{"bad char", "--a/b=1", testPath + `:1: invalid flag name "a/b"`},
		{"leading dot", "--.a", testPath + `:1: invalid flag name ".a"`},
		{"unmatched leading quote", `--a="x`, testPath + `:1: flag --a: unmatched quote`},
		{"unmatched trailing quote", `--a=x'`, testPath + `:1: flag --a: unmatched quote`},
		{"mismatched quotes", `--a="x'`, testPath + `:1: flag --a: unmatched quote`},
		{"lone quote", `--a "`, testPath + `:1: flag --a: unmatched quote`},
		{"nul", "--a=1\n--b=\x00\n", testPath + `:2: line contains a NUL byte`},
		{"nul in comment", "# \x00", testPath + `:1: line contains a NUL byte`},
		{"invalid utf8", "--a=\xff", testPath + `:1: line is not valid UTF-8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(testPath, []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want error %q", f.Args(), tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want prefix %q", err, tt.want)
			}
		})
	}
}

func TestBytes(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", ""},
		{"blank line", "\n", "\n"},
		{"adds trailing newline", "--a=1", "--a=1\n"},
		{"keeps comments verbatim", "  # indented\n\n#x\n--a=1\n", "  # indented\n\n#x\n--a=1\n"},
		{"normalises flags", "  --a   b\n--c='d'\n", "--a=b\n--c=d\n"},
		{"quotes whitespace", "--a='x y'\n--b=\"\t\"\n", "--a=\"x y\"\n--b=\"\t\"\n"},
		{"quotes empty", "--a=\n--b=''\n", "--a=\"\"\n--b=\"\"\n"},
		{"quotes edge quotes", `--a='"x'` + "\n" + `--b="y'"`, `--a=""x"` + "\n" + `--b="y'"` + "\n"},
		{"bare", "--a\n", "--a\n"},
		{"crlf to lf", "# c\r\n--a\r\n", "# c\n--a\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(testPath, []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := string(f.Bytes())
			if got != tt.want {
				t.Errorf("Bytes() = %q, want %q", got, tt.want)
			}
			assertRoundTrip(t, f)
		})
	}
}

func TestEdits(t *testing.T) {
	const in = "# header\n--a=1\n# about b\n--b=1\n--a=2\n--c\n"
	tests := []struct {
		name string
		edit func(f *File)
		want string
	}{
		{"set existing updates last and drops earlier", func(f *File) { f.Set("a", "3") },
			"# header\n# about b\n--b=1\n--a=3\n--c\n"},
		{"set bare flag gives it a value", func(f *File) { f.Set("c", "true") },
			"# header\n--a=1\n# about b\n--b=1\n--a=2\n--c=true\n"},
		{"set new appends", func(f *File) { f.Set("d", "x y") },
			in + "--d=\"x y\"\n"},
		{"set empty", func(f *File) { f.Set("b", "") },
			"# header\n--a=1\n# about b\n--b=\"\"\n--a=2\n--c\n"},
		{"remove all occurrences", func(f *File) { f.Remove("a") },
			"# header\n# about b\n--b=1\n--c\n"},
		{"remove missing", func(f *File) { f.Remove("zz") }, in},
		{"add comment", func(f *File) { f.AddComment("added by kubeseed") },
			in + "# added by kubeseed\n"},
		{"add multi-line comment", func(f *File) { f.AddComment("one\n\n--two") },
			in + "# one\n#\n# --two\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(testPath, []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(f)
			if got := string(f.Bytes()); got != tt.want {
				t.Errorf("Bytes() =\n%s\nwant\n%s", got, tt.want)
			}
			assertRoundTrip(t, f)
		})
	}
}

func TestGetSetRemove(t *testing.T) {
	f, err := Parse(testPath, []byte("--a=1\n--a=2\n--flag\n"))
	if err != nil {
		t.Fatal(err)
	}
	get := func(name, wantV string, wantOK bool) {
		t.Helper()
		if v, ok := f.Get(name); v != wantV || ok != wantOK {
			t.Errorf("Get(%q) = %q, %v; want %q, %v", name, v, ok, wantV, wantOK)
		}
	}
	get("a", "2", true)
	get("flag", "", true)
	get("missing", "", false)

	args := f.Args()
	f.Set("a", "3")
	if args[0].Value != "1" {
		t.Errorf("Set changed a slice returned earlier by Args")
	}
	get("a", "3", true)
	if got := f.Args(); len(got) != 2 || got[0] != (Arg{Name: "a", Value: "3", HasValue: true, Line: 2}) {
		t.Errorf("after Set: %+v", got)
	}
	f.Set("new", "v")
	if got := f.Args()[2]; got != (Arg{Name: "new", Value: "v", HasValue: true}) {
		t.Errorf("appended arg = %+v, want Line 0", got)
	}
	if !f.Remove("a") {
		t.Errorf("Remove(a) = false")
	}
	if f.Remove("a") {
		t.Errorf("second Remove(a) = true")
	}
	get("a", "", false)

	n := New("/p")
	if n.Path != "/p" || len(n.Args()) != 0 || len(n.Bytes()) != 0 {
		t.Errorf("New: %+v", n)
	}
	n.Set("x", "1")
	if got := string(n.Bytes()); got != "--x=1\n" {
		t.Errorf("New+Set: %q", got)
	}
}

func TestFlags(t *testing.T) {
	vars := map[string]string{"SNAP_DATA": "/var/lib/kubeseed", "EMPTY": "", "LOOP": "${SNAP_DATA}"}
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{"plain", "# c\n--a=1\n--b\n--c=\n", []string{"--a=1", "--b", "--c="}, ""},
		{"expand", "--ca=${SNAP_DATA}/certs/ca.crt", []string{"--ca=/var/lib/kubeseed/certs/ca.crt"}, ""},
		{"expand twice", "--x=${SNAP_DATA}:${SNAP_DATA}", []string{"--x=/var/lib/kubeseed:/var/lib/kubeseed"}, ""},
		{"expand empty", "--x=a${EMPTY}b", []string{"--x=ab"}, ""},
		{"no recursive expansion", "--x=${LOOP}", []string{"--x=${SNAP_DATA}"}, ""},
		{"literal dollar", "--x=$HOME$ $", []string{"--x=$HOME$ $"}, ""},
		{"dollar before brace var", "--x=$${EMPTY}", []string{"--x=$"}, ""},
		{"quoted whitespace not re-quoted", "--x='a b'", []string{"--x=a b"}, ""},
		{"unknown var", "--a=1\n--x=${NOPE}/y", nil, testPath + ":2: flag --x: unknown variable ${NOPE}"},
		{"empty var name", "--x=${}", nil, testPath + ":1: flag --x: unknown variable ${}"},
		{"unterminated", "\n--x=${SNAP_DATA", nil, testPath + `:2: flag --x: unterminated "${"`},
		{"unterminated after good", "--x=${SNAP_DATA}${", nil, testPath + `:1: flag --x: unterminated "${"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse(testPath, []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Flags(vars)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("Flags error = %v, want prefix %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Flags: %v", err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Flags = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFlagsSetArgHasNoLine(t *testing.T) {
	f := New(testPath)
	f.Set("x", "${NOPE}")
	_, err := f.Flags(nil)
	if err == nil || !strings.HasPrefix(err.Error(), testPath+": flag --x: unknown variable") {
		t.Errorf("error = %v", err)
	}
}

// assertRoundTrip checks that Bytes re-parses to the same flags and renders
// identically again.
func assertRoundTrip(t *testing.T, f *File) {
	t.Helper()
	out := f.Bytes()
	g, err := Parse(f.Path, out)
	if err != nil {
		t.Fatalf("re-parse of %q: %v", out, err)
	}
	strip := func(as []Arg) []Arg {
		for i := range as {
			as[i].Line = 0
		}
		return as
	}
	if got, want := strip(g.Args()), strip(f.Args()); !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip of %q:\ngot  %+v\nwant %+v", out, got, want)
	}
	if again := g.Bytes(); string(again) != string(out) {
		t.Fatalf("Bytes not stable: %q then %q", out, again)
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"\n",
		sampleFile,
		"--kubeconfig=${SNAP_DATA}/credentials/kubelet.config\n--node-ip=10.0.0.5\n--cgroup-driver=systemd\n",
		"--cluster-cidr=10.1.0.0/16\n--healthz-bind-address=127.0.0.1\n--profiling=false\n",
		"--leader-elect-lease-duration=60s\n--leader-elect-renew-deadline=30s\n",
		"# comment\r\n--a 'b c'\r\n--d=\"\"\r\n",
		"--x='\"y'\n--z=\"'\"\n",
		"\ufeff--bom\n",
		"foo\n",
		"--a=\"unterminated\n",
		"-- \n--=x\n---x\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(testPath, data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), testPath+":") {
				t.Fatalf("error without path: %v", err)
			}
			return
		}
		out := file.Bytes()
		again, err := Parse(testPath, out)
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", out, data, err)
		}
		// Lines are preserved one for one, so Line must match too.
		if got, want := again.Args(), file.Args(); !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip of %q via %q:\ngot  %+v\nwant %+v", data, out, got, want)
		}
		if out2 := again.Bytes(); string(out2) != string(out) {
			t.Fatalf("Bytes not stable: %q then %q", out, out2)
		}
		last := map[string]string{}
		for _, a := range file.Args() {
			if !a.HasValue && a.Value != "" {
				t.Fatalf("bare flag with value: %+v", a)
			}
			last[a.Name] = a.Value
		}
		for name, want := range last {
			if v, ok := file.Get(name); !ok || v != want {
				t.Fatalf("Get(%q) = %q, %v; want %q", name, v, ok, want)
			}
		}
		_, _ = file.Flags(map[string]string{"SNAP_DATA": "/d"})
	})
}

func TestLookup(t *testing.T) {
	f, err := Parse("args/x", []byte("--a=1\n# c\n--b=${DATA_DIR}/f\n--a=2\n--c=${NOPE}\n"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DATA_DIR": "/d"}
	cases := []struct {
		name, value string
		line        int
		ok          bool
		err         string
	}{
		{"a", "2", 4, true, ""},
		{"b", "/d/f", 3, true, ""},
		{"missing", "", 0, false, ""},
		{"c", "", 5, true, "args/x:5: flag --c: unknown variable ${NOPE}"},
	}
	for _, c := range cases {
		v, line, ok, err := f.Lookup(c.name, vars)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if v != c.value || line != c.line || ok != c.ok || gotErr != c.err {
			t.Errorf("Lookup(%s) = %q, %d, %v, %q; want %q, %d, %v, %q", c.name, v, line, ok, gotErr, c.value, c.line, c.ok, c.err)
		}
	}
}
