package agent

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the agents' Prometheus metrics. One set serves every agent
// of a process (--simulate), so the values are sums over its devices.
type Metrics struct {
	connected      prometheus.Gauge
	joins          prometheus.Counter
	sent           *prometheus.CounterVec
	publishErrors  prometheus.Counter
	twinChanges    prometheus.Counter
	rejected       prometheus.Counter
	outboxQueued   prometheus.Counter
	outboxReplayed prometheus.Counter
	ebpfActive     prometheus.Gauge
	otaPhases      *prometheus.CounterVec
}

// NewMetrics registers the agent metrics with reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_agent_connected_devices", Help: "Devices of this process with a session on the hub."}),
		joins:     prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_agent_joins_total", Help: "Credentials obtained by joining."}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_agent_messages_sent_total", Help: "Messages published to the hub, by topic suffix."},
			[]string{"topic"}),
		publishErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_agent_publish_errors_total", Help: "Publishes that failed (the next sync or the outbox carries them)."}),
		twinChanges:    prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_agent_twin_changes_total", Help: "Twin properties changed by the hub's messages."}),
		rejected:       prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_agent_rejected_messages_total", Help: "Hub messages the agent could not use (malformed, skewed clock)."}),
		outboxQueued:   prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_agent_outbox_queued_total", Help: "Reports stored on disk while offline."}),
		outboxReplayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_agent_outbox_replayed_total", Help: "Stored reports sent after reconnecting."}),
		ebpfActive:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_agent_ebpf_active_devices", Help: "Devices whose eBPF packet filter is attached."}),
		otaPhases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_agent_ota_phases_total", Help: "Firmware update phases entered (Downloading, Succeeded, RolledBack, ...)."},
			[]string{"phase"}),
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.joins, m.sent, m.publishErrors, m.twinChanges, m.rejected, m.outboxQueued, m.outboxReplayed, m.ebpfActive, m.otaPhases)
	}
	return m
}
