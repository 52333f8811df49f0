package server

import (
	"testing"

	"github.com/strata-kv/strata/engine"
)

// TestEntryKindsDistinct: no two kinds of log entry start with the same
// byte, and a marshalled command starts with the command kind's.
func TestEntryKindsDistinct(t *testing.T) {
	seen := map[byte]string{}
	for _, k := range entryKinds {
		if other, ok := seen[k.b]; ok {
			t.Errorf("%s and %s both start with 0x%02x", other, k.name, k.b)
		}
		seen[k.b] = k.name
	}
	c := engine.Command{Op: engine.OpSet, Path: "/a", Value: "1"}
	if b := c.Marshal(); b[0] != entryCommand {
		t.Errorf("a marshalled command starts with 0x%02x, want 0x%02x", b[0], entryCommand)
	}
}
