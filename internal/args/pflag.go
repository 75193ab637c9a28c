package args

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"
)

// Refuse says why an args file may not set a flag its component accepts,
// or returns nil.
type Refuse func(name string) error

// ApplyPFlags loads path and sets each flag on an upstream component's
// pflag set, so an unknown flag or a bad value is reported with the file and
// line before anything starts. refuse, if not nil, vetoes flags first.
func ApplyPFlags(path string, vars map[string]string, component string, fs *pflag.FlagSet, refuse Refuse) error {
	f, err := Load(path)
	if err != nil {
		return err
	}
	return f.Apply(vars, func(name, value string, hasValue bool) error {
		if refuse != nil {
			if err := refuse(name); err != nil {
				return err
			}
		}
		fl := fs.Lookup(name)
		if fl == nil {
			return fmt.Errorf("unknown flag for %s", component)
		}
		if fl.Deprecated != "" {
			return fmt.Errorf("deprecated upstream: %s", fl.Deprecated)
		}
		if !hasValue {
			if fl.NoOptDefVal == "" {
				return errors.New("needs a value")
			}
			value = fl.NoOptDefVal
		}
		return fs.Set(name, value)
	})
}
