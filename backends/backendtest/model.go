package backendtest

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/strata-kv/strata/backends"
)

// testRandomizedModel applies random batches of puts and deletes over a
// small key space (so deletes and overwrites hit, and the structure splits
// and merges), a fifth of them aborted, and checks every read inside a
// batch and the whole content after it against a map.
func (s *suite) testRandomizedModel(t *testing.T) {
	b := s.fresh(t)
	rng := rand.New(rand.NewPCG(7, 11))
	model := map[string]string{}
	randKey := func() string {
		n := rng.IntN(600)
		return fmt.Sprintf("%c/%d", "ab\x00\xff"[n%4], n) // spread over prefixes, incl. 0x00/0xff
	}
	for batch := uint64(1); batch <= 200; batch++ {
		pending := maps.Clone(model)
		abort := rng.IntN(5) == 0
		err := b.Update(batch, func(w backends.Writer) error {
			for op := rng.IntN(80); op >= 0; op-- {
				k := randKey()
				switch rng.IntN(3) {
				case 0, 1:
					v := fmt.Sprintf("v%d.%d", batch, op)
					if err := w.Put([]byte(k), []byte(v)); err != nil {
						return err
					}
					pending[k] = v
				case 2:
					if err := w.Delete([]byte(k)); err != nil {
						return err
					}
					delete(pending, k)
				}
				probe := randKey()
				got, ok := getIn(t, w, probe)
				if want, wok := pending[probe]; ok != wok || got != want {
					return fmt.Errorf("batch %d: Get(%q) = %q,%v; want %q,%v", batch, probe, got, ok, want, wok)
				}
			}
			if abort {
				return errAbort
			}
			return nil
		})
		switch {
		case abort && !errors.Is(err, errAbort):
			t.Fatalf("batch %d: aborted Update returned %v", batch, err)
		case !abort && err != nil:
			t.Fatalf("batch %d: %v", batch, err)
		case !abort:
			model = pending
		}
		want := make([]kv, 0, len(model))
		for _, k := range slices.Sorted(maps.Keys(model)) {
			want = append(want, kv{k, model[k]})
		}
		if got := dump(t, b); !slices.Equal(got, want) {
			t.Fatalf("batch %d (aborted %v): content has %d pairs, model %d", batch, abort, len(got), len(want))
		}
	}
}
