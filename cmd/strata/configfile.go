package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// transportKeys maps the keys of etcd's client-transport-security and
// peer-transport-security sections to flag names (without the "peer-"
// prefix of the peer section, added by applyConfigFile).
var transportKeys = map[string]string{
	"cert-file": "cert-file", "key-file": "key-file", "trusted-ca-file": "trusted-ca-file",
	"client-cert-auth": "client-cert-auth", "auto-tls": "auto-tls",
	"crl-file": "crl-file", "allowed-cn": "cert-allowed-cn", "allowed-hostname": "cert-allowed-hostname",
}

// applyConfigFile sets flags from an etcd YAML configuration file (etcd's
// --config-file): its top-level keys are the flag names (name, data-dir,
// listen-client-urls, initial-cluster...), and TLS settings sit in
// client-transport-security and peer-transport-security, as etcd's
// embed.Config reads them. The YAML goes through JSON with
// sigs.k8s.io/yaml, the library etcd uses, so values mean what they mean
// to etcd. Lists (etcd writes URL lists as comma-separated strings) are
// joined with commas. Keys that name no flag are returned as warnings
// (etcd ignores them silently); security settings Strata lacks are
// errors, as their flags are (refusedFlags).
func applyConfigFile(fs *flag.FlagSet, path string) (warnings []string, err error) {
	top, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	a := &configApplier{fs: fs, path: path}
	for _, k := range sortedKeys(top) {
		v := top[k]
		var prefix string
		switch k {
		case "client-transport-security":
			prefix = "client-"
		case "peer-transport-security":
			prefix = "peer-"
		default:
			if err := a.set(k, k, v); err != nil {
				return nil, err
			}
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			if v == nil {
				continue
			}
			return nil, fmt.Errorf("--config-file %s: key %q must be a mapping", path, k)
		}
		if err := a.transportSection(k, prefix, m); err != nil {
			return nil, err
		}
	}
	return a.warnings, nil
}

// readConfigFile decodes the YAML file at path into its top-level mapping,
// numbers kept as written.
func readConfigFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config-file: %w", err)
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return nil, fmt.Errorf("--config-file %s: %w", path, err)
	}
	var top map[string]any
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("--config-file %s: not a YAML mapping of etcd options: %w", path, err)
	}
	return top, nil
}

// configApplier sets flags from one config file's keys, collecting warnings.
type configApplier struct {
	fs       *flag.FlagSet
	path     string
	warnings []string
}

// set sets flag name from the value v of config key key.
func (a *configApplier) set(key, name string, v any) error {
	if v == nil || name == "cors" && v == "" {
		return nil // "key:" with no value (or cors: ''): etcd keeps the default
	}
	f := a.fs.Lookup(name)
	if f == nil || name == "config-file" || name == "version" {
		a.warnings = append(a.warnings, fmt.Sprintf("--config-file %s: unknown key %q ignored", a.path, key))
		return nil
	}
	s, err := configValue(v)
	if err != nil {
		return fmt.Errorf("--config-file %s: key %q: %w", a.path, key, err)
	}
	if err := a.fs.Set(name, s); err != nil {
		return fmt.Errorf("--config-file %s: key %q: invalid value %q: %w", a.path, key, s, err)
	}
	return nil
}

// transportSection sets the TLS flags named by the keys of section k
// (client- or peer-transport-security, as prefix says).
func (a *configApplier) transportSection(k, prefix string, m map[string]any) error {
	for _, sk := range sortedKeys(m) {
		name, ok := transportKeys[sk]
		if !ok {
			a.warnings = append(a.warnings, fmt.Sprintf("--config-file %s: unknown key %q in %s ignored", a.path, sk, k))
			continue
		}
		switch {
		case prefix == "peer-":
			name = "peer-" + name
		case name == "crl-file" || name == "cert-allowed-hostname":
			name = "client-" + name
		case name == "cert-allowed-cn":
			if m[sk] != nil && m[sk] != "" {
				return fmt.Errorf("--config-file %s: %s.%s: Strata does not implement this etcd security setting, and will not start without it rather than ignore it", a.path, k, sk)
			}
			continue
		}
		if err := a.set(k+"."+sk, name, m[sk]); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// configValue renders a decoded YAML value as a flag value.
func configValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return fmt.Sprint(x), nil
	case json.Number:
		return x.String(), nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			s, err := configValue(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("unsupported value %v", v)
}
