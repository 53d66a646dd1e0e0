package edgehub

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connected    prometheus.Gauge
	joins        prometheus.Counter
	authFailures *prometheus.CounterVec
	aclDenials   prometheus.Counter
	messages     *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	twinChanges  prometheus.Counter
	statusWrites *prometheus.CounterVec
	packets      *prometheus.CounterVec
	bytes        *prometheus.CounterVec
	ruleHits     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_edgehub_connected_devices", Help: "Devices with an MQTT session on the hub."}),
		joins:     prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_edgehub_joins_total", Help: "Credentials issued to joining agents."}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_edgehub_auth_failures_total", Help: "Refused MQTT connections, by kind (join, device)."},
			[]string{"kind"}),
		aclDenials: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_edgehub_acl_denials_total", Help: "Publishes and subscriptions refused because the topic is not the client's."}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_edgehub_messages_total", Help: "Device messages received, by topic suffix."},
			[]string{"topic"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_edgehub_rejected_messages_total", Help: "Device messages the hub could not use (malformed, oversized, skewed clock), by topic suffix."},
			[]string{"topic"}),
		twinChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_edgehub_twin_changes_total", Help: "Twin properties changed by device messages."}),
		statusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_edgehub_status_writes_total", Help: "EdgeDevice status patches, by result."},
			[]string{"result"}),
	}
	m.packets = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_edgehub_device_packets_total", Help: "Packets counted by the devices' eBPF filters, summed per namespace."},
		[]string{"namespace", "direction", "protocol"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_edgehub_device_bytes_total", Help: "Bytes counted by the devices' eBPF filters, summed per namespace."},
		[]string{"namespace", "direction", "protocol"})
	m.ruleHits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_edgehub_filter_rule_hits_total", Help: "Packets matching the devices' packet filter rules, per namespace and rule name."},
		[]string{"namespace", "rule"})
	if reg != nil {
		reg.MustRegister(m.connected, m.joins, m.authFailures, m.aclDenials, m.messages, m.rejected, m.twinChanges, m.statusWrites, m.packets, m.bytes, m.ruleHits)
	}
	return m
}
