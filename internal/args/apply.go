package args

import (
	"fmt"
	"os"
)

// Setter applies one flag to a component's flag set. hasValue is false for
// a bare flag such as --profiling.
type Setter func(name, value string, hasValue bool) error

// Apply expands ${VAR} references and hands each flag to set, in file
// order. Errors name the file and line of the offending flag.
func (f *File) Apply(vars map[string]string, set Setter) error {
	for _, a := range f.Args() {
		value := a.Value
		if a.HasValue {
			v, err := expand(a.Value, vars)
			if err != nil {
				return errorAt(f.Path, a.Line, "%v", err)
			}
			value = v
		}
		if err := set(a.Name, value, a.HasValue); err != nil {
			return errorAt(f.Path, a.Line, "--%s: %v", a.Name, err)
		}
	}
	return nil
}

// Load reads and parses an args file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read args file: %w", err)
	}
	return Parse(path, data)
}

// Expand replaces ${VAR} references in s, for config files that sit beside
// the args files and share their variables.
func Expand(s string, vars map[string]string) (string, error) {
	return expand(s, vars)
}

// Lookup returns the value of the flag's last occurrence with ${VAR}
// references expanded, and its line (0 for a flag added with Set).
func (f *File) Lookup(name string, vars map[string]string) (value string, line int, ok bool, err error) {
	for _, a := range f.Args() {
		if a.Name == name {
			value, line, ok = a.Value, a.Line, true
		}
	}
	if !ok {
		return "", 0, false, nil
	}
	v, err := expand(value, vars)
	if err != nil {
		return "", line, true, errorAt(f.Path, line, "flag --%s: %s", name, err)
	}
	return v, line, true, nil
}
