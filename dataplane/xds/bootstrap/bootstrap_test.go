package bootstrap

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-platform/cairn/internal/golden"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	connectionsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/cairn-platform/cairn/dataplane/xds/translate"
)

const httpOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

type validator interface{ ValidateAll() error }

// unpack opens a packed config, checks its type and runs its ValidateAll.
func unpack[M proto.Message](t *testing.T, where string, a *anypb.Any) M {
	t.Helper()
	if a == nil {
		t.Fatalf("%s: no typed config", where)
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		t.Fatalf("%s: unpacking %s: %v", where, a.GetTypeUrl(), err)
	}
	m, ok := inner.(M)
	if !ok {
		t.Fatalf("%s: packed %T, want %T", where, inner, *new(M))
	}
	if err := any(m).(validator).ValidateAll(); err != nil {
		t.Errorf("%s: %v", where, err)
	}
	return m
}

func staticCluster(t *testing.T, b *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	t.Helper()
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	t.Fatalf("no static cluster %q", name)
	return nil
}

func TestBuildDefaults(t *testing.T) {
	b, err := Build(Options{Gateway: "public"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("ValidateAll: %v", err)
	}

	// Identity: the node cluster selects the gateway's Routes.
	if n := b.GetNode(); n.GetId() != "public-envoy" || n.GetCluster() != "public" {
		t.Errorf("node = {id: %q, cluster: %q}, want {public-envoy, public}", n.GetId(), n.GetCluster())
	}
	if f := b.GetNode().GetMetadata().GetFields()["cairn.flavor"].GetStringValue(); f != string(translate.FlavorEnvoy) {
		t.Errorf("node metadata cairn.flavor = %q", f)
	}

	// ADS wiring.
	dr := b.GetDynamicResources()
	ads := dr.GetAdsConfig()
	if ads.GetApiType() != corev3.ApiConfigSource_GRPC || ads.GetTransportApiVersion() != corev3.ApiVersion_V3 || !ads.GetSetNodeOnFirstMessageOnly() {
		t.Errorf("ads_config = %v", ads)
	}
	if gs := ads.GetGrpcServices(); len(gs) != 1 || gs[0].GetEnvoyGrpc().GetClusterName() != XDSCluster {
		t.Errorf("ads_config.grpc_services = %v, want envoy_grpc %s", gs, XDSCluster)
	}
	for name, src := range map[string]*corev3.ConfigSource{"lds_config": dr.GetLdsConfig(), "cds_config": dr.GetCdsConfig()} {
		if src.GetAds() == nil || src.GetResourceApiVersion() != corev3.ApiVersion_V3 {
			t.Errorf("%s = %v, want ads over V3", name, src)
		}
	}

	// The xDS cluster: DNS, HTTP/2, keepalives, the default Service address.
	xds := staticCluster(t, b, XDSCluster)
	if xds.GetType() != clusterv3.Cluster_STRICT_DNS || xds.GetConnectTimeout().AsDuration() <= 0 {
		t.Errorf("cairn-xds: type %v, connect timeout %v", xds.GetType(), xds.GetConnectTimeout())
	}
	sa := xds.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "cairn-xds.cairn-system.svc" || sa.GetPortValue() != 18000 {
		t.Errorf("cairn-xds endpoint = %s:%d", sa.GetAddress(), sa.GetPortValue())
	}
	if ka := xds.GetUpstreamConnectionOptions().GetTcpKeepalive(); ka.GetKeepaliveTime().GetValue() == 0 {
		t.Errorf("cairn-xds has no TCP keepalive: %v", ka)
	}
	if len(xds.GetTypedExtensionProtocolOptions()) != 1 {
		t.Errorf("typed_extension_protocol_options = %v", xds.GetTypedExtensionProtocolOptions())
	}
	hpo := unpack[*httpv3.HttpProtocolOptions](t, "cairn-xds "+httpOptionsKey, xds.GetTypedExtensionProtocolOptions()[httpOptionsKey])
	h2 := hpo.GetExplicitHttpConfig().GetHttp2ProtocolOptions()
	if h2 == nil {
		t.Fatalf("cairn-xds is not explicitly HTTP/2: %v", hpo)
	}
	// The server enforces at least 10 s between pings.
	if iv := h2.GetConnectionKeepalive().GetInterval().AsDuration(); iv.Seconds() < 10 {
		t.Errorf("HTTP/2 keepalive interval %v is below the server's 10 s minimum", iv)
	}

	// Admin on loopback only; the health listener exposes /ready through it.
	admin := b.GetAdmin().GetAddress().GetSocketAddress()
	if admin.GetAddress() != "127.0.0.1" || admin.GetPortValue() != DefaultAdminPort {
		t.Errorf("admin = %s:%d", admin.GetAddress(), admin.GetPortValue())
	}
	ls := b.GetStaticResources().GetListeners()
	if len(ls) != 1 || ls[0].GetName() != HealthListener || ls[0].GetAddress().GetSocketAddress().GetPortValue() != DefaultHealthPort {
		t.Fatalf("static listeners = %v", ls)
	}
	hcm := unpack[*hcmv3.HttpConnectionManager](t, "health listener", ls[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig())
	for _, f := range hcm.GetHttpFilters() {
		unpack[*routerv3.Router](t, "health listener "+f.GetName(), f.GetTypedConfig())
	}
	paths := map[string]bool{}
	for _, r := range hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
		paths[r.GetMatch().GetPath()] = true
		if c := r.GetRoute().GetCluster(); c != AdminCluster {
			t.Errorf("health route %s goes to %q", r.GetMatch().GetPath(), c)
		}
		staticCluster(t, b, r.GetRoute().GetCluster())
	}
	if len(paths) != 2 || !paths["/ready"] || !paths["/stats/prometheus"] {
		t.Errorf("health listener paths = %v, want exactly /ready and /stats/prometheus", paths)
	}
	adminEP := staticCluster(t, b, AdminCluster).GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if adminEP.GetAddress() != "127.0.0.1" || adminEP.GetPortValue() != admin.GetPortValue() {
		t.Errorf("cairn-admin points at %s:%d, admin is on %d", adminEP.GetAddress(), adminEP.GetPortValue(), admin.GetPortValue())
	}

	// Overload manager and runtime.
	rm := b.GetOverloadManager().GetResourceMonitors()
	if len(rm) != 1 || rm[0].GetName() != "envoy.resource_monitors.global_downstream_max_connections" {
		t.Fatalf("resource monitors = %v", rm)
	}
	if c := unpack[*connectionsv3.DownstreamConnectionsConfig](t, "resource monitor", rm[0].GetTypedConfig()); c.GetMaxActiveDownstreamConnections() != DefaultMaxConnections {
		t.Errorf("max connections = %d", c.GetMaxActiveDownstreamConnections())
	}
	if layers := b.GetLayeredRuntime().GetLayers(); len(layers) != 2 || layers[0].GetStaticLayer() == nil || layers[1].GetAdminLayer() == nil {
		t.Errorf("runtime layers = %v, want static then admin", layers)
	}

	// Nothing here may shadow what the control plane sends over xDS.
	sent := map[string]bool{
		translate.FunctionHostCluster: true, translate.AuthzCluster: true, translate.TracingCluster: true,
		translate.EnvoyListenerName("public"): true,
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		if sent[c.GetName()] || strings.HasPrefix(c.GetName(), "cairn/") {
			t.Errorf("static cluster %q collides with a name the translator uses", c.GetName())
		}
	}
	for _, l := range ls {
		if sent[l.GetName()] || strings.HasPrefix(l.GetName(), "cairn/") {
			t.Errorf("static listener %q collides with a name the translator uses", l.GetName())
		}
		if p := l.GetAddress().GetSocketAddress().GetPortValue(); p == 10080 {
			t.Errorf("static listener %q takes the gateway listener's default port", l.GetName())
		}
	}
}

// TestDeepValidation shows why the bootstrap is validated beyond
// ValidateAll: an invalid config packed in an Any passes ValidateAll.
func TestDeepValidation(t *testing.T) {
	b, err := Build(Options{Gateway: "public"})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{
				// Envoy requires at least 1 ms.
				ConnectionKeepalive: &corev3.KeepaliveSettings{Interval: durationpb.New(0), Timeout: durationpb.New(0)},
			}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	staticCluster(t, b, XDSCluster).TypedExtensionProtocolOptions[httpOptionsKey] = bad
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("ValidateAll now fails (%v): the check below no longer shows anything", err)
	}
	if err := translate.ValidateDeep(b); err == nil || !strings.Contains(err.Error(), "HttpProtocolOptions") {
		t.Errorf("ValidateDeep = %v, want an error inside HttpProtocolOptions", err)
	}
}

func TestBuildOptions(t *testing.T) {
	b, err := Build(Options{
		Gateway: "internal", NodeID: "envoy-0", XDSAddress: "[fd00::1]:15010",
		AdminPort: 19000, HealthPort: 19002, MaxConnections: 1000,
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := b.GetNode(); n.GetId() != "envoy-0" || n.GetCluster() != "internal" {
		t.Errorf("node = %v", n)
	}
	sa := staticCluster(t, b, XDSCluster).GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "fd00::1" || sa.GetPortValue() != 15010 {
		t.Errorf("xDS endpoint = %s:%d", sa.GetAddress(), sa.GetPortValue())
	}
	if p := b.GetAdmin().GetAddress().GetSocketAddress().GetPortValue(); p != 19000 {
		t.Errorf("admin port = %d", p)
	}
}

func TestBuildRejects(t *testing.T) {
	tests := []struct {
		opts Options
		want string
	}{
		{Options{}, "gateway name is required"},
		{Options{Gateway: "Public"}, "invalid gateway name"},
		{Options{Gateway: "public-"}, "invalid gateway name"},
		{Options{Gateway: strings.Repeat("a", 64)}, "invalid gateway name"},
		{Options{Gateway: "public", XDSAddress: "cairn-xds"}, "want host:port"},
		{Options{Gateway: "public", XDSAddress: ":18000"}, "host is empty"},
		{Options{Gateway: "public", XDSAddress: "cairn-xds:0"}, "port must be a number from 1 to 65535"},
		{Options{Gateway: "public", XDSAddress: "cairn-xds:70000"}, "port must be a number from 1 to 65535"},
		{Options{Gateway: "public", AdminPort: 70000}, "invalid admin port 70000"},
		{Options{Gateway: "public", AdminPort: 9000, HealthPort: 9000}, "must differ"},
		{Options{Gateway: "public", MaxConnections: -1}, "must be positive"},
	}
	for _, tt := range tests {
		_, err := Build(tt.opts)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Build(%+v) = %v, want an error containing %q", tt.opts, err, tt.want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	b, err := Build(Options{Gateway: "public"})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"yaml", "json"} {
		out, err := Marshal(b, format)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Marshal(b, format)
		if err != nil || !bytes.Equal(out, again) {
			t.Errorf("%s: output is not deterministic", format)
		}
		parsed, err := Parse(out)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if !proto.Equal(parsed, b) {
			t.Errorf("%s: parsed bootstrap differs from the built one", format)
		}
	}
	if _, err := Marshal(b, "xml"); err == nil || !strings.Contains(err.Error(), `invalid output format "xml"`) {
		t.Errorf("Marshal(xml) = %v", err)
	}
	if _, err := Parse([]byte("node: {id: a, no_such_field: 1}")); err == nil {
		t.Error("Parse accepted an unknown field")
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		format string
	}{
		{"public", Options{Gateway: "public"}, "yaml"},
		{"public", Options{Gateway: "public"}, "json"},
		{"custom", Options{
			Gateway: "internal", NodeID: "envoy-0", XDSAddress: "xds.example.com:443",
			AdminPort: 19000, HealthPort: 19002, MaxConnections: 1000,
		}, "yaml"},
	}
	for _, tt := range tests {
		goldenPath := filepath.Join("testdata", tt.name+".golden."+tt.format)
		t.Run(filepath.Base(goldenPath), func(t *testing.T) {
			b, err := Build(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Marshal(b, tt.format)
			if err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, goldenPath, got)
		})
	}
}
