package args

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"
)

// ApplyPFlags loads path and sets each flag on an upstream component's
// pflag set, so an unknown flag or a bad value is reported with the file and
// line before anything starts.
func ApplyPFlags(path string, vars map[string]string, component string, fs *pflag.FlagSet) error {
	f, err := Load(path)
	if err != nil {
		return err
	}
	return f.Apply(vars, func(name, value string, hasValue bool) error {
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
