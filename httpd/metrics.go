package httpd

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Request metrics, the same for the lean path and net/http:
//
//	strata_http_requests_total{endpoint,method,code}      counter
//	strata_http_request_duration_seconds{endpoint,method} histogram
//
// endpoint is the route ("/v2/keys", "/v2/auth/users", "/v2/stats/self",
// ...; "other" for anything unrouted), with watches (GET /v2/keys with
// wait=true) apart as "/v2/keys?wait=true", since their duration is how
// long they waited. method is the request method (one of the nine HTTP
// methods, else "other"); code the response status. The duration is from
// the request head being read to the handler returning (net/http) or the
// response being buffered (lean path).
//
// The lean path pays two clock reads, one histogram observation (a few
// atomic adds) and one atomic add: its counters are pre-resolved, and the
// request counter is a plain array read at scrape time.
type requestMetrics struct {
	latency *prometheus.HistogramVec
	// fastLat are latency's observers for /v2/keys by lean-path method.
	fastLat [len(fastMethods)]prometheus.Observer
	// fastCount counts lean-path requests by method and status code.
	fastCount [len(fastMethods)][600]atomic.Uint64
	// slow counts net/http requests by endpoint, method and code.
	slow sync.Map // slowKey -> *atomic.Uint64
}

// fastMethods are the methods the lean path serves, in fastMethodIndex order.
var fastMethods = [...]string{"GET", "PUT", "POST", "DELETE"}

func fastMethodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "PUT":
		return 1
	case "POST":
		return 2
	}
	return 3
}

type slowKey struct {
	endpoint, method string
	code             int
}

// latencyBuckets cover a lean-path read (~50 µs) to a write waiting out a
// leader election (seconds).
var latencyBuckets = []float64{
	0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

func newRequestMetrics() *requestMetrics {
	m := &requestMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "strata", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Client request latency by endpoint and method (watches: how long they waited).",
			Buckets: latencyBuckets,
		}, []string{"endpoint", "method"}),
	}
	for i, meth := range fastMethods {
		m.fastLat[i] = m.latency.WithLabelValues(keysPrefix, meth)
	}
	return m
}

var requestsDesc = prometheus.NewDesc("strata_http_requests_total",
	"Client requests answered, by endpoint, method and status code.",
	[]string{"endpoint", "method", "code"}, nil)

// Describe implements prometheus.Collector.
func (m *requestMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	m.latency.Describe(ch)
}

// Collect implements prometheus.Collector: the request counts of both
// paths, summed per series, and the latency histograms.
func (m *requestMetrics) Collect(ch chan<- prometheus.Metric) {
	counts := map[slowKey]uint64{}
	for i := range m.fastCount {
		for code := range m.fastCount[i] {
			if n := m.fastCount[i][code].Load(); n > 0 {
				counts[slowKey{keysPrefix, fastMethods[i], code}] += n
			}
		}
	}
	m.slow.Range(func(k, v any) bool {
		counts[k.(slowKey)] += v.(*atomic.Uint64).Load()
		return true
	})
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n), k.endpoint, k.method, strconv.Itoa(k.code))
	}
	m.latency.Collect(ch)
}

// fast records a request the lean path answered with status.
func (m *requestMetrics) fast(method string, status int, start time.Time) {
	i := fastMethodIndex(method)
	m.fastLat[i].Observe(time.Since(start).Seconds())
	if status < 0 || status >= len(m.fastCount[i]) {
		status = 0
	}
	m.fastCount[i][status].Add(1)
}

// serve runs h for a request that came through net/http and records it.
func (m *requestMetrics) serve(h http.Handler, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	defer func() {
		// Recorded even when the handler aborts (panic(http.ErrAbortHandler)).
		code := rec.status
		if code == 0 {
			code = http.StatusOK
		}
		ep, meth := endpointOf(r), methodLabel(r.Method)
		m.latency.WithLabelValues(ep, meth).Observe(time.Since(start).Seconds())
		k := slowKey{ep, meth, code}
		c, ok := m.slow.Load(k)
		if !ok {
			c, _ = m.slow.LoadOrStore(k, new(atomic.Uint64))
		}
		c.(*atomic.Uint64).Add(1)
	}()
	h.ServeHTTP(rec, r)
}

// statusRecorder remembers the status a handler wrote. Unwrap keeps
// http.ResponseController (watch flushes, deadlines) working through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// metricsHandler serves reg in the Prometheus text (or negotiated) format.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// code is the status the response will carry.
func (w *fastResponse) code() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.status
}
