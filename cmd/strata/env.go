package main

import (
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/strata-kv/strata/server"
)

// strataOnlyFlags are the flags etcd does not have: besides ETCD_<FLAG>
// they can be set as STRATA_<FLAG>.
var strataOnlyFlags = map[string]bool{
	"backend": true, "watch-history": true, "max-key-bytes": true, "log-format": true,
	"restore": true, "read-header-timeout": true, "idle-timeout": true, "max-header-bytes": true,
	"max-watchers": true, "max-key-depth": true,
}

// flagToEnv is etcd's mapping: prefix, "_", the flag name upper-cased
// with dashes as underscores (--initial-cluster -> ETCD_INITIAL_CLUSTER).
func flagToEnv(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its
// ETCD_<FLAG> (or, for a Strata-only flag, STRATA_<FLAG>) variable in
// environ, as etcd's pkg/flags.SetFlagsFromEnv does. A flag given both on
// the command line and in the environment is an error naming both (etcd
// exits on it too); empty variables count as unset. It returns a warning
// for each ETCD_* or STRATA_* variable that names no flag.
func applyEnv(fs *flag.FlagSet, environ []string) (warnings []string, err error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	onCmdLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCmdLine[f.Name] = true })
	used := map[string]bool{}
	var errs []string
	fs.VisitAll(func(f *flag.Flag) {
		names := []string{flagToEnv("ETCD", f.Name)}
		if strataOnlyFlags[f.Name] {
			names = append(names, flagToEnv("STRATA", f.Name))
		}
		var from, val string
		for _, name := range names {
			v, ok := env[name]
			if !ok {
				continue
			}
			used[name] = true
			if v == "" {
				continue
			}
			switch {
			case onCmdLine[f.Name]:
				errs = append(errs, fmt.Sprintf("conflicting environment variable %q is shadowed by corresponding command-line flag --%s (either unset environment variable or disable flag)", name, f.Name))
				return
			case from != "" && v != val:
				errs = append(errs, fmt.Sprintf("environment variables %s=%q and %s=%q set the same flag --%s differently", from, val, name, v, f.Name))
				return
			}
			from, val = name, v
		}
		if from == "" {
			return
		}
		if err := fs.Set(f.Name, val); err != nil {
			errs = append(errs, fmt.Sprintf("invalid value %q for %s: %v", val, from, err))
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	var keys []string
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if (strings.HasPrefix(k, "ETCD_") || strings.HasPrefix(k, "STRATA_")) && !used[k] && !ignoredEnv[k] {
			warnings = append(warnings, fmt.Sprintf("unrecognized environment variable %s=%s", k, env[k]))
		}
	}
	return warnings, nil
}

// ignoredEnv are ETCD_*/STRATA_* variables that are not flags but are
// read elsewhere: no warning for them.
var ignoredEnv = map[string]bool{
	"ETCD_UNSUPPORTED_ARCH": true, // etcd's own, for unsupported platforms
	server.FaultFileEnv:     true, // peer fault injection (tests)
	testDNSServerEnv:        true, // tests only
}
