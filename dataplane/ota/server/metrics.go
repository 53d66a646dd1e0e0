package server

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests       *prometheus.CounterVec
	bytesSent      *prometheus.CounterVec
	deltaBuilds    *prometheus.CounterVec
	deltaSeconds   prometheus.Histogram
	cacheFetches   *prometheus.CounterVec
	cacheBytes     prometheus.Gauge
	cacheEvictions prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_ota_server_requests_total", Help: "OTA HTTP requests, by kind (metadata, target, delta) and status code."},
			[]string{"kind", "code"}),
		bytesSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_ota_server_bytes_sent_total", Help: "Response body bytes sent, by kind (metadata, target, delta)."},
			[]string{"kind"}),
		deltaBuilds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_ota_server_delta_builds_total", Help: "Delta builds, by result (built, too_large, failed)."},
			[]string{"result"}),
		deltaSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cairn_ota_server_delta_build_seconds", Help: "Time spent computing one delta.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10)}),
		cacheFetches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_ota_server_cache_fetches_total", Help: "Calls of Fetch, by result: fetched (cache miss filled), verified (image already cached, opened only to check the namespace may read it), not_found, mismatch (length or sha256), failed."},
			[]string{"result"}),
		cacheBytes:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_ota_server_cache_bytes", Help: "Bytes of images and deltas in the cache directory."}),
		cacheEvictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_ota_server_cache_evictions_total", Help: "Cached images and deltas removed to stay under MaxCacheBytes."}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.bytesSent, m.deltaBuilds, m.deltaSeconds, m.cacheFetches, m.cacheBytes, m.cacheEvictions)
	}
	return m
}
