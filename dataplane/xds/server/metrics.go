package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the xDS server's own Prometheus series.
type metrics struct {
	responses *prometheus.CounterVec // by type URL
	acks      *prometheus.CounterVec // by gateway, type URL
	nacks     *prometheus.CounterVec // by gateway, type URL
	proxies   *prometheus.GaugeVec   // by gateway, flavor
	pushes    *prometheus.CounterVec // by gateway
}

func newMetrics() *metrics {
	return &metrics{
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_xds_responses_total", Help: "xDS responses sent to proxies, by resource type.",
		}, []string{"type"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_xds_acks_total", Help: "Configurations proxies acknowledged, by gateway and resource type.",
		}, []string{"gateway", "type"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_xds_nacks_total", Help: "Configurations proxies rejected, by gateway and resource type.",
		}, []string{"gateway", "type"}),
		proxies: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cairn_xds_connected_proxies", Help: "Proxies with an open xDS stream, by gateway and flavor (envoy, grpc).",
		}, []string{"gateway", "flavor"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_xds_gateway_updates_total", Help: "New translations published per gateway.",
		}, []string{"gateway"}),
	}
}

// RegisterMetrics adds the server's series to reg.
func (s *Server) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{s.metrics.responses, s.metrics.acks, s.metrics.nacks, s.metrics.proxies, s.metrics.pushes} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
