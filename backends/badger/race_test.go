//go:build race

package badger_test

// The race detector slows badger down ~10x: bigUpdate keys are reduced so
// `go test -race` stays well under a minute, still several spills deep.
const bigKeys = 120_000
