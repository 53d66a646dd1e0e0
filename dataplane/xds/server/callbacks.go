package server

import (
	"context"
	"maps"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"

	"github.com/cairn-platform/cairn/dataplane/xds/translate"
)

// typeURLs are the resource types Cairn serves.
var typeURLs = map[types.ResponseType]string{
	types.Listener: resourcev3.ListenerType,
	types.Route:    resourcev3.RouteType,
	types.Cluster:  resourcev3.ClusterType,
	types.Endpoint: resourcev3.EndpointType,
}

// flavorOf tells Envoy from grpc-go by the user agent both send, unless the
// node's metadata says "cairn.flavor".
func flavorOf(n *corev3.Node) translate.Flavor {
	switch f := translate.Flavor(n.GetMetadata().GetFields()["cairn.flavor"].GetStringValue()); f {
	case translate.FlavorEnvoy, translate.FlavorGRPC:
		return f
	}
	if strings.Contains(strings.ToLower(n.GetUserAgentName()), "grpc") {
		return translate.FlavorGRPC
	}
	return translate.FlavorEnvoy
}

// attach binds a stream to its node on the node's first request. The node's
// cluster names the gateway it serves.
func (s *Server) attach(id int64, n *corev3.Node) (*stream, bool) {
	st, ok := s.streams[id]
	if !ok {
		return nil, false
	}
	if st.node != nil || n == nil {
		return st, false
	}
	nd, ok := s.nodes[n.GetId()]
	if !ok {
		nd = &node{
			id: n.GetId(), gateway: n.GetCluster(), flavor: flavorOf(n),
			listeners:  map[string]bool{},
			versionSeq: map[string]map[string]int64{},
			acked:      map[string]string{},
			sent:       map[string]bool{},
		}
		s.nodes[nd.id] = nd
		s.metrics.proxies.WithLabelValues(nd.gateway, string(nd.flavor)).Inc()
	}
	nd.streams++
	st.node = nd
	return st, true
}

// observe records an ACK or NACK of a response the stream got; it reports
// whether the node's state changed.
func (s *Server) observe(st *stream, typeURL, nonce string, errDetail string, hasErr bool) bool {
	if st == nil || st.node == nil || nonce == "" {
		return false
	}
	version, ok := st.pending[nonce]
	if !ok {
		return false
	}
	delete(st.pending, nonce)
	if hasErr {
		s.metrics.nacks.WithLabelValues(st.node.gateway, typeURL).Inc()
		s.reject(st.node, typeURL, version, errDetail)
		return true
	}
	s.metrics.acks.WithLabelValues(st.node.gateway, typeURL).Inc()
	st.node.acked[typeURL] = version
	st.node.nack = nil
	return true
}

// OnStreamOpen implements sotw.Callbacks.
func (s *Server) OnStreamOpen(_ context.Context, id int64, _ string) error {
	s.mu.Lock()
	s.streams[id] = &stream{pending: map[string]string{}}
	s.mu.Unlock()
	return nil
}

// OnStreamClosed implements sotw.Callbacks.
func (s *Server) OnStreamClosed(id int64, _ *corev3.Node) { s.closeStream(id) }

// OnStreamRequest implements sotw.Callbacks. A state-of-the-world listener
// request names every listener the client wants.
func (s *Server) OnStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	s.handleRequest(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail(), func(map[string]bool) []string {
		return req.GetResourceNames()
	})
	return nil
}

// handleRequest is the part of a request both protocols share: bind the
// stream to its node, record an ACK or NACK, and track a gRPC client's
// listener subscriptions (wanted maps the current set to the new one).
func (s *Server) handleRequest(id int64, n *corev3.Node, typeURL, nonce string, errDetail *status.Status, wanted func(current map[string]bool) []string) {
	s.mu.Lock()
	st, joined := s.attach(id, n)
	changed := s.observe(st, typeURL, nonce, errDetail.GetMessage(), errDetail != nil)
	resubscribe := false
	var nodeID, gateway string
	if st != nil && st.node != nil {
		if st.node.flavor == translate.FlavorGRPC && typeURL == resourcev3.ListenerType {
			resubscribe = setListeners(st.node, wanted(st.node.listeners))
		}
		nodeID, gateway = st.node.id, st.node.gateway
	}
	s.mu.Unlock()

	if joined || resubscribe {
		// The cache answers this request's watch once the snapshot is set.
		go s.pushAndLog(nodeID)
	}
	if joined || changed {
		s.notify(gateway)
	}
}

func setListeners(n *node, names []string) bool {
	want := map[string]bool{}
	for _, l := range names {
		want[l] = true
	}
	if maps.Equal(want, n.listeners) {
		return false
	}
	n.listeners = want
	return true
}

// OnStreamResponse implements sotw.Callbacks.
func (s *Server) OnStreamResponse(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.streams[id]; ok {
		st.pending[resp.GetNonce()] = resp.GetVersionInfo()
		if st.node != nil {
			st.node.sent[resp.GetTypeUrl()] = true
		}
	}
	s.metrics.responses.WithLabelValues(resp.GetTypeUrl()).Inc()
}

// OnDeltaStreamOpen implements delta.Callbacks.
func (s *Server) OnDeltaStreamOpen(ctx context.Context, id int64, typeURL string) error {
	return s.OnStreamOpen(ctx, id, typeURL)
}

// OnDeltaStreamClosed implements delta.Callbacks.
func (s *Server) OnDeltaStreamClosed(id int64, _ *corev3.Node) { s.closeStream(id) }

// OnStreamDeltaRequest implements delta.Callbacks. A delta listener request
// subscribes and unsubscribes names relative to the current set.
func (s *Server) OnStreamDeltaRequest(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
	s.handleRequest(id, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail(), func(current map[string]bool) []string {
		names := maps.Clone(current)
		for _, l := range req.GetResourceNamesSubscribe() {
			names[l] = true
		}
		for _, l := range req.GetResourceNamesUnsubscribe() {
			delete(names, l)
		}
		return slices.Collect(maps.Keys(names))
	})
	return nil
}

// OnStreamDeltaResponse implements delta.Callbacks. A delta response carries
// the snapshot's type version as its system version.
func (s *Server) OnStreamDeltaResponse(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.streams[id]; ok {
		st.pending[resp.GetNonce()] = resp.GetSystemVersionInfo()
		if st.node != nil {
			st.node.sent[resp.GetTypeUrl()] = true
		}
	}
	s.metrics.responses.WithLabelValues(resp.GetTypeUrl()).Inc()
}

// OnFetchRequest implements rest.Callbacks (REST xDS is not served).
func (s *Server) OnFetchRequest(context.Context, *discoveryv3.DiscoveryRequest) error { return nil }

// OnFetchResponse implements rest.Callbacks.
func (s *Server) OnFetchResponse(*discoveryv3.DiscoveryRequest, *discoveryv3.DiscoveryResponse) {}

func (s *Server) closeStream(id int64) {
	s.mu.Lock()
	st, ok := s.streams[id]
	delete(s.streams, id)
	var gateway string
	if ok && st.node != nil {
		st.node.streams--
		gateway = st.node.gateway
		if st.node.streams <= 0 {
			s.metrics.proxies.WithLabelValues(st.node.gateway, string(st.node.flavor)).Dec()
			delete(s.nodes, st.node.id)
			s.cache.ClearSnapshot(st.node.id)
			s.pushMu.Delete(st.node.id)
		}
	}
	s.mu.Unlock()
	s.notify(gateway)
}

func (s *Server) pushAndLog(id string) {
	if err := s.push(context.Background(), id); err != nil {
		s.log.Error(err, "pushing snapshot", "node", id)
	}
}
