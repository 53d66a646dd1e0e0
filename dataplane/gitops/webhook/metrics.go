package webhook

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_gitops_webhook_requests_total",
			Help: "GitRepo webhook deliveries, by provider (github, gitea, gitlab-signed, gitlab-token; empty when unauthenticated) and result (triggered, ignored, duplicate, unauthorized, too_large, error).",
		}, []string{"provider", "result"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if err := reg.Register(m.requests); err != nil {
		return fmt.Errorf("registering webhook metrics: %w", err)
	}
	return nil
}
