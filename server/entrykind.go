package server

import "github.com/strata-kv/strata/engine"

// The first byte of a log entry's data says what it carries; fsm.Apply
// dispatches on it. Every kind is declared here, and entrykind_test.go
// checks that no two share a byte.
const (
	// entryCommand: an engine.Command, as engine.Command.Marshal encodes it.
	entryCommand = engine.CommandVersion
	// attrsPrefix marks a member publishing its name and client URLs (etcd
	// publishes them through raft the same way, as a normal entry): the
	// byte, then memberRecord JSON (ID, Name, ClientURLs, and PeerURLs,
	// recorded only where the record has none).
	attrsPrefix = 0xA7
)

// entryKinds lists every kind with its name, for the collision test.
var entryKinds = []struct {
	name string
	b    byte
}{
	{"engine command", entryCommand},
	{"member attributes", attrsPrefix},
}
