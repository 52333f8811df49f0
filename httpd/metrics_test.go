package httpd

import (
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// BenchmarkFastMetrics is what the lean path adds per request: the clock
// read at the head, and fast (a clock read, one histogram observation,
// one array counter add).
func BenchmarkFastMetrics(b *testing.B) {
	m := newRequestMetrics()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			m.fast(http.MethodGet, http.StatusOK, start)
		}
	})
}

// Both paths count into one series per (endpoint, method, code).
func TestRequestMetricsMerge(t *testing.T) {
	m := newRequestMetrics()
	m.fast("PUT", 201, time.Now())
	m.fast("PUT", 201, time.Now())
	m.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(201) }), discardWriter{}, mustReq(t, "PUT", "/v2/keys/a"))
	m.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), discardWriter{}, mustReq(t, "GET", "/v2/keys/a?wait=true"))
	m.serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), discardWriter{}, mustReq(t, "BREW", "/coffee"))
	got := map[string]float64{}
	ch := make(chan prometheusMetric, 100)
	go func() { m.Collect(ch); close(ch) }()
	for pm := range ch {
		var d dtoMetric
		if err := pm.Write(&d); err != nil {
			t.Fatal(err)
		}
		if d.Counter == nil {
			continue
		}
		key := ""
		for _, l := range d.Label {
			key += l.GetName() + "=" + l.GetValue() + " "
		}
		got[key] = d.Counter.GetValue()
	}
	want := map[string]float64{
		"code=201 endpoint=/v2/keys method=PUT ":           3,
		"code=200 endpoint=/v2/keys?wait=true method=GET ": 1,
		"code=200 endpoint=other method=other ":            1,
	}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("series %v, want %v", got, want)
		}
	}
}

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}

func mustReq(t *testing.T, method, target string) *http.Request {
	r, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type (
	prometheusMetric = prometheus.Metric
	dtoMetric        = dto.Metric
)
