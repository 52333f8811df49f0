//go:build !failpoints

// Package failpoint injects storage faults for tests built with
// -tags failpoints; in every other build Inject is a no-op the compiler
// removes.
package failpoint

// Enabled reports whether this binary was built with -tags failpoints.
const Enabled = false

// Inject returns the error armed for the named point, if any (never, in
// this build).
func Inject(name string) error { return nil }
