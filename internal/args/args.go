// Package args reads and edits MicroK8s-style args files: one command-line
// flag per line for one component, e.g. args/kube-apiserver.
//
// Users edit these files by hand, so comments and blank lines survive a
// Parse/Bytes round trip.
package args

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Arg is one flag line.
type Arg struct {
	Name     string // without leading dashes, e.g. "secure-port"
	Value    string // unquoted value; "" when HasValue is false
	HasValue bool   // false for a bare boolean flag like "--anonymous-auth"
	Line     int    // 1-based line in the file; 0 for args added with Set
}

// line is one line of a File: raw text (comment or blank) when arg is nil.
type line struct {
	raw string
	arg *Arg
}

// File is a parsed args file that keeps comments and blank lines.
type File struct {
	Path  string
	lines []line
}

// New returns an empty file that will be written to path.
func New(path string) *File {
	return &File{Path: path}
}

// Parse parses the args file at path (used only in error messages).
func Parse(path string, data []byte) (*File, error) {
	f := New(path)
	// A BOM from a Windows editor would otherwise make line 1 a bad flag.
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if len(data) == 0 {
		return f, nil
	}
	text := strings.TrimSuffix(string(data), "\n")
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		// Drop CR so a CRLF file is rewritten with consistent LF endings.
		raw = strings.TrimRight(raw, "\r")
		if strings.IndexByte(raw, 0) >= 0 {
			return nil, errorAt(path, n, "line contains a NUL byte")
		}
		if !utf8.ValidString(raw) {
			return nil, errorAt(path, n, "line is not valid UTF-8")
		}
		t := strings.TrimSpace(raw)
		if t == "" || strings.HasPrefix(t, "#") {
			f.lines = append(f.lines, line{raw: raw})
			continue
		}
		a, err := parseArg(t)
		if err != nil {
			return nil, errorAt(path, n, "%s", err)
		}
		a.Line = n
		f.lines = append(f.lines, line{arg: a})
	}
	return f, nil
}

// parseArg parses one trimmed, non-comment line.
func parseArg(t string) (*Arg, error) {
	if !strings.HasPrefix(t, "--") {
		return nil, fmt.Errorf("expected a flag starting with \"--\", got %q", t)
	}
	rest := t[2:]
	end := strings.IndexFunc(rest, func(r rune) bool { return r == '=' || unicode.IsSpace(r) })
	if end < 0 {
		end = len(rest)
	}
	name := rest[:end]
	if name == "" {
		return nil, fmt.Errorf("missing flag name in %q", t)
	}
	if !validName(name) {
		return nil, fmt.Errorf("invalid flag name %q", name)
	}
	a := &Arg{Name: name}
	if end == len(rest) {
		return a, nil
	}
	var v string
	if rest[end] == '=' {
		v = rest[end+1:]
	} else {
		// "--name value" form; the line is trimmed, so value is non-empty.
		v = strings.TrimSpace(rest[end:])
	}
	v, err := unquote(v)
	if err != nil {
		return nil, fmt.Errorf("flag --%s: %w", name, err)
	}
	a.Value, a.HasValue = v, true
	return a, nil
}

// unquote strips one pair of matching quotes. There are no escapes: the
// quotes only protect whitespace, as in a MicroK8s args file.
func unquote(v string) (string, error) {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1], nil
	}
	if isQuote(v, 0) || isQuote(v, len(v)-1) {
		return "", fmt.Errorf("unmatched quote in value %q", v)
	}
	return v, nil
}

func isQuote(s string, i int) bool {
	return i >= 0 && i < len(s) && (s[i] == '"' || s[i] == '\'')
}

// validName reports whether name matches ^[A-Za-z0-9][A-Za-z0-9._-]*$.
func validName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return false
		}
	}
	return name != ""
}

// Args returns a copy of the flags in file order.
func (f *File) Args() []Arg {
	var out []Arg
	for _, l := range f.lines {
		if l.arg != nil {
			out = append(out, *l.arg)
		}
	}
	return out
}

// Get returns the value of the last occurrence of the flag, which is the
// one that wins for a scalar flag. A bare flag yields ("", true).
func (f *File) Get(name string) (string, bool) {
	for i := len(f.lines) - 1; i >= 0; i-- {
		if a := f.lines[i].arg; a != nil && a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}

// Set gives the flag a value. If present, the last occurrence is updated in
// place (keeping its position and surrounding comments) and earlier
// duplicates are removed; otherwise a new line is appended.
//
// name must be a valid flag name and value must not contain a newline or
// NUL, or Bytes will produce a file that Parse rejects.
func (f *File) Set(name, value string) {
	last := -1
	for i, l := range f.lines {
		if l.arg != nil && l.arg.Name == name {
			last = i
		}
	}
	if last < 0 {
		f.lines = append(f.lines, line{arg: &Arg{Name: name, Value: value, HasValue: true}})
		return
	}
	a := f.lines[last].arg
	a.Value, a.HasValue = value, true
	f.lines = f.filter(func(i int, l line) bool {
		return i >= last || l.arg == nil || l.arg.Name != name
	})
}

// Remove deletes every occurrence of the flag and reports whether there was
// any.
func (f *File) Remove(name string) bool {
	n := len(f.lines)
	f.lines = f.filter(func(_ int, l line) bool {
		return l.arg == nil || l.arg.Name != name
	})
	return len(f.lines) != n
}

// filter returns the lines for which keep is true, in a new slice so that
// slices returned earlier are not clobbered.
func (f *File) filter(keep func(int, line) bool) []line {
	out := make([]line, 0, len(f.lines))
	for i, l := range f.lines {
		if keep(i, l) {
			out = append(out, l)
		}
	}
	return out
}

// AddComment appends text as a comment; each line of a multi-line text
// becomes its own "# " line so it cannot turn into a flag.
func (f *File) AddComment(text string) {
	for _, t := range strings.Split(text, "\n") {
		t = strings.TrimRight(t, "\r")
		if t == "" {
			f.lines = append(f.lines, line{raw: "#"})
		} else {
			f.lines = append(f.lines, line{raw: "# " + t})
		}
	}
}

// Bytes renders the file. Comments and blank lines are kept verbatim; flags
// are normalised to --name=value.
func (f *File) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range f.lines {
		if l.arg == nil {
			b.WriteString(l.raw)
		} else {
			b.WriteString(render(l.arg))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func render(a *Arg) string {
	if !a.HasValue {
		return "--" + a.Name
	}
	v := a.Value
	// Quote whatever Parse would otherwise trim or treat as a quote.
	if v == "" || strings.IndexFunc(v, unicode.IsSpace) >= 0 || isQuote(v, 0) || isQuote(v, len(v)-1) {
		v = `"` + v + `"`
	}
	return "--" + a.Name + "=" + v
}

// Flags returns the flags in command-line form, "--name=value" or "--name",
// with ${VAR} references in values expanded from vars.
func (f *File) Flags(vars map[string]string) ([]string, error) {
	var out []string
	for _, l := range f.lines {
		a := l.arg
		if a == nil {
			continue
		}
		if !a.HasValue {
			out = append(out, "--"+a.Name)
			continue
		}
		v, err := expand(a.Value, vars)
		if err != nil {
			return nil, errorAt(f.Path, a.Line, "flag --%s: %s", a.Name, err)
		}
		out = append(out, "--"+a.Name+"="+v)
	}
	return out, nil
}

// expand replaces ${VAR} with vars[VAR]; a "$" not followed by "{" is
// literal. Expanded text is not expanded again.
func expand(s string, vars map[string]string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i+2:], '}')
		if j < 0 {
			return "", fmt.Errorf("unterminated \"${\" in %q", s[i:])
		}
		name := s[i+2 : i+2+j]
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("unknown variable ${%s}", name)
		}
		b.WriteString(v)
		s = s[i+2+j+1:]
	}
}

// errorAt formats "PATH:LINE: message"; args added with Set have no line.
func errorAt(path string, line int, format string, a ...any) error {
	if line <= 0 {
		return fmt.Errorf("%s: "+format, append([]any{path}, a...)...)
	}
	return fmt.Errorf("%s:%d: "+format, append([]any{path, line}, a...)...)
}
