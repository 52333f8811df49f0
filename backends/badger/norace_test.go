//go:build !race

package badger_test

const bigKeys = 200_000
