//go:build race

package badger_test

// The race detector slows badger down ~10x: bigUpdate keys are reduced so
// `go test -race` stays well under a minute, still still past the ~37k-entry transaction limit (one or two spills).
const bigKeys = 60_000
