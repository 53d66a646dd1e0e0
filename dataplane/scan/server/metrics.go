package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	scans    *prometheus.CounterVec
	duration prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_scanner_scans_total",
			Help: "Image scan requests, by result (scanned, cached, or the error code).",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_scanner_scan_duration_seconds",
			Help:    "Time to catalogue and match one image (cache misses only).",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 10),
		}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.scans, m.duration} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering scanner metrics: %w", err)
		}
	}
	return nil
}
