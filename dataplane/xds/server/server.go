// Package server is Cairn's xDS control plane: it serves each gateway's
// translated resources to Envoy proxies and grpc-go clients over ADS (state
// of the world and delta), tracks what every proxy acknowledged or rejected,
// and answers whether a Route is programmed.
package server

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"k8s.io/apimachinery/pkg/types"

	"github.com/cairn-platform/cairn/dataplane/xds/translate"
	"github.com/cairn-platform/cairn/internal/grpcserve"
)

// Server holds the snapshots of every connected proxy.
type Server struct {
	log     logr.Logger
	cache   cachev3.SnapshotCache
	xds     serverv3.Server
	metrics *metrics

	// onChange is told the gateway whose proxies acknowledged, rejected,
	// connected or left, so Route status can be refreshed.
	onChange atomic.Pointer[func(gateway string)]

	mu       sync.Mutex
	gateways map[string]*gatewayState
	nodes    map[string]*node
	streams  map[int64]*stream
	pushMu   sync.Map // node ID → *sync.Mutex: one snapshot push at a time per node
}

type gatewayState struct {
	seq        int64
	result     *translate.Result
	routes     map[types.NamespacedName]routeVersion
	quarantine map[translate.Flavor]map[types.NamespacedName]Rejection
}

// routeVersion is the generation of a Route last pushed and the push (seq)
// that first carried it.
type routeVersion struct{ generation, seq int64 }

// Rejection is a proxy's refusal of a Route.
type Rejection struct {
	Generation int64
	Node       string
	Message    string
}

type node struct {
	id, gateway string
	flavor      translate.Flavor
	streams     int
	// listeners a gRPC client subscribed to.
	listeners map[string]bool
	// versionSeq[typeURL][version] is the latest push that had that version.
	versionSeq map[string]map[string]int64
	acked      map[string]string // type URL → version
	// sent are the types the node has received at least one response of.
	sent map[string]bool
	// included are the Routes of the node's current snapshot, and
	// clusterRoutes the Routes that send to each of its clusters.
	included      map[types.NamespacedName]bool
	clusterRoutes map[string][]types.NamespacedName
	// nack is the last rejection no Route could be blamed for.
	nack *Rejection
}

type stream struct {
	node    *node
	pending map[string]string // response nonce → version
}

// New creates a server.
func New(log logr.Logger) *Server {
	s := &Server{
		log:      log,
		metrics:  newMetrics(),
		gateways: map[string]*gatewayState{},
		nodes:    map[string]*node{},
		streams:  map[int64]*stream{},
	}
	s.cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	s.xds = serverv3.NewServer(context.Background(), &nackAwareCache{SnapshotCache: s.cache}, s)
	return s
}

// Register adds the aggregated discovery service (SotW and delta) to g.
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
}

// SetGateway publishes a gateway's new translation to its proxies.
func (s *Server) SetGateway(ctx context.Context, gateway string, res *translate.Result) error {
	_, span := otel.Tracer("github.com/cairn-platform/cairn/dataplane/xds").Start(ctx, "xds.SetGateway")
	defer span.End()
	span.SetAttributes(attribute.String("cairn.gateway", gateway), attribute.Int("cairn.routes", len(res.Routes)))

	s.metrics.pushes.WithLabelValues(gateway).Inc()
	s.mu.Lock()
	gw := s.gateway(gateway)
	gw.seq++
	gw.result = res
	for k, r := range res.Routes {
		if prev, ok := gw.routes[k]; !ok || prev.generation != r.Generation {
			gw.routes[k] = routeVersion{generation: r.Generation, seq: gw.seq}
		}
	}
	for k := range gw.routes {
		if _, ok := res.Routes[k]; !ok {
			delete(gw.routes, k)
		}
	}
	// A rejection holds for the generation that was rejected only.
	for _, q := range gw.quarantine {
		for k, rej := range q {
			if r, ok := res.Routes[k]; !ok || r.Generation != rej.Generation {
				delete(q, k)
			}
		}
	}
	var ids []string
	for id, n := range s.nodes {
		if n.gateway == gateway {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()

	for _, id := range ids {
		if err := s.push(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) gateway(name string) *gatewayState {
	gw, ok := s.gateways[name]
	if !ok {
		gw = &gatewayState{
			routes:     map[types.NamespacedName]routeVersion{},
			quarantine: map[translate.Flavor]map[types.NamespacedName]Rejection{},
		}
		s.gateways[name] = gw
	}
	return gw
}

// push builds the node's snapshot from the current state and hands it to
// the cache. The cache may answer open watches synchronously, so s.mu is not
// held while it does.
func (s *Server) push(ctx context.Context, id string) error {
	m, _ := s.pushMu.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	defer mu.Unlock()

	s.mu.Lock()
	n, ok := s.nodes[id]
	if !ok {
		s.mu.Unlock()
		return nil
	}
	gw := s.gateway(n.gateway)
	var res translate.Resources
	if gw.result != nil {
		res = gw.result.Resources(n.flavor)
		if n.flavor == translate.FlavorGRPC {
			res = closure(res, n.listeners)
		}
	}
	snap, err := newSnapshot(res)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("building snapshot for node %s: %w", id, err)
	}
	for typ, url := range typeURLs {
		v := snap.Resources[typ].Version
		if n.versionSeq[url] == nil {
			n.versionSeq[url] = map[string]int64{}
		}
		n.versionSeq[url][v] = gw.seq
	}
	n.included, n.clusterRoutes = includedRoutes(res)
	s.mu.Unlock()

	if err := s.cache.SetSnapshot(ctx, id, snap); err != nil {
		return fmt.Errorf("setting snapshot for node %s: %w", id, err)
	}
	return nil
}

// Excluded lists the Routes each flavor's proxies rejected, for the next
// translation to leave out.
func (s *Server) Excluded(gateway string) map[translate.Flavor]map[types.NamespacedName]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[translate.Flavor]map[types.NamespacedName]int64{}
	for f, q := range s.gateway(gateway).quarantine {
		for k, rej := range q {
			if out[f] == nil {
				out[f] = map[types.NamespacedName]int64{}
			}
			out[f][k] = rej.Generation
		}
	}
	return out
}

// Programmed reports whether the proxies of a gateway run the given
// generation of a Route: status, a CamelCase reason and a message.
func (s *Server) Programmed(gateway string, route types.NamespacedName, generation int64) (bool, string, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gw := s.gateway(gateway)
	flavors := make([]string, 0, len(gw.quarantine))
	for f := range gw.quarantine {
		flavors = append(flavors, string(f))
	}
	sort.Strings(flavors)
	for _, f := range flavors {
		if rej, ok := gw.quarantine[translate.Flavor(f)][route]; ok && rej.Generation == generation {
			return false, "Rejected", fmt.Sprintf("proxy %s rejected this route, so it is not served to %s clients: %s", rej.Node, f, rej.Message)
		}
	}
	rv, ok := gw.routes[route]
	if !ok || rv.generation != generation {
		return false, "Pending", "the route has not been sent to the proxies yet"
	}
	var connected, serving, done int
	var nack *Rejection
	for _, n := range s.nodes {
		if n.gateway != gateway {
			continue
		}
		connected++
		if !n.included[route] {
			continue
		}
		serving++
		if s.programmedSeq(n) >= rv.seq {
			done++
		} else if n.nack != nil {
			nack = n.nack
		}
	}
	switch {
	case connected == 0:
		return false, "NoProxies", fmt.Sprintf("no proxy of gateway %q is connected", gateway)
	case serving == 0:
		return false, "Pending", fmt.Sprintf("none of the %d connected proxies of gateway %q requested this route's hostnames", connected, gateway)
	case done < serving && nack != nil:
		return false, "Pending", fmt.Sprintf("acknowledged by %d of %d proxies of gateway %q; proxy %s rejected the gateway's configuration: %s", done, serving, gateway, nack.Node, nack.Message)
	case done < serving:
		return false, "Pending", fmt.Sprintf("acknowledged by %d of %d proxies of gateway %q", done, serving, gateway)
	}
	return true, "Programmed", fmt.Sprintf("acknowledged by %d proxies of gateway %q", serving, gateway)
}

// programmedSeq is the newest push the node has acknowledged in full, over
// the types it was sent (a proxy need not ask for every type).
func (s *Server) programmedSeq(n *node) int64 {
	min := int64(-1)
	for url := range n.sent {
		seq := int64(0)
		if v, ok := n.acked[url]; ok {
			seq = n.versionSeq[url][v]
		}
		if min < 0 || seq < min {
			min = seq
		}
	}
	return min
}

// entryName finds route entry names ("ns/route/rule/match") in a NACK text.
var entryName = regexp.MustCompile(`[a-z0-9][-a-z0-9]*/[a-z0-9][-a-z0-9.]*/[0-9]+/[0-9]+`)

// reject records a NACK. The Routes that changed since the node's last
// acknowledged push are the suspects; those the message names — by route
// entry or by a cluster only they use — are left out of that flavor until
// their generation changes. A rejection that names none of them is kept on
// the node and reported, but excludes nothing: guessing would take healthy
// routes down.
func (s *Server) reject(n *node, typeURL, version, message string) {
	gw := s.gateway(n.gateway)
	nackSeq := n.versionSeq[typeURL][version]
	goodSeq := int64(0)
	if v, ok := n.acked[typeURL]; ok {
		goodSeq = n.versionSeq[typeURL][v]
	}
	suspect := map[types.NamespacedName]bool{}
	for k := range n.included {
		if rv, ok := gw.routes[k]; ok && rv.seq > goodSeq && rv.seq <= nackSeq {
			suspect[k] = true
		}
	}
	blamed := map[types.NamespacedName]bool{}
	for _, m := range entryName.FindAllString(message, -1) {
		if k, ok := routeKey(m); ok && suspect[k] {
			blamed[k] = true
		}
	}
	for cluster, users := range n.clusterRoutes {
		if !strings.Contains(message, `"`+cluster+`"`) {
			continue
		}
		for _, k := range users {
			if suspect[k] {
				blamed[k] = true
			}
		}
	}
	if gw.quarantine[n.flavor] == nil {
		gw.quarantine[n.flavor] = map[types.NamespacedName]Rejection{}
	}
	for k := range blamed {
		gw.quarantine[n.flavor][k] = Rejection{Generation: gw.routes[k].generation, Node: n.id, Message: truncate(message, 2048)}
	}
	if len(blamed) == 0 {
		n.nack = &Rejection{Node: n.id, Message: truncate(message, 2048)}
	}
	s.log.Info("proxy rejected configuration", "node", n.id, "gateway", n.gateway, "type", typeURL, "version", version, "blamed", len(blamed), "error", truncate(message, 512))
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// OnChange sets the function told about a gateway whose proxies
// acknowledged, rejected, connected or left.
func (s *Server) OnChange(f func(gateway string)) { s.onChange.Store(&f) }

func (s *Server) notify(gateway string) {
	if f := s.onChange.Load(); f != nil && gateway != "" {
		(*f)(gateway)
	}
}

// Serve answers xDS on addr until ctx ends, then stops gracefully.
func (s *Server) Serve(ctx context.Context, addr string) error {
	g := grpc.NewServer(
		// Proxies keep one long-lived stream; detect dead peers, and allow
		// their keepalives without treating them as abuse.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(100000),
	)
	s.Register(g)
	s.log.Info("serving xDS", "address", addr)
	return grpcserve.Serve(ctx, "xDS", addr, g)
}
