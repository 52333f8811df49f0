package load

import (
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tc := range tests {
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRounds(t *testing.T) {
	var r Rounds
	if _, ok := r.Medians(); ok {
		t.Fatal("no rounds: ok")
	}
	r.Add(100, 2*time.Millisecond, 9*time.Millisecond, 1)
	r.Add(300, 1*time.Millisecond, 5*time.Millisecond, 0)
	r.Add(200, 3*time.Millisecond, 7*time.Millisecond, 2)
	m, ok := r.Medians()
	if want := (Medians{N: 3, RPS: 200, RPSMin: 100, RPSMax: 300, P50ms: 2, P99ms: 7, Failed: 3}); !ok || m != want {
		t.Fatalf("Medians = %+v, %v; want %+v", m, ok, want)
	}
}
