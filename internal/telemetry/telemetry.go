// Package telemetry sets up OpenTelemetry tracing for Cairn processes and
// wraps reconcilers in spans.
package telemetry

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
)

// Config selects where spans go.
type Config struct {
	// ServiceName is reported as service.name.
	ServiceName string
	// ServiceVersion is reported as service.version.
	ServiceVersion string
	// OTLPEndpoint is a gRPC OTLP collector, as a URL ("http://collector:4317",
	// the OTEL_EXPORTER_OTLP_ENDPOINT convention; http means no TLS) or as
	// "host:port". Empty keeps tracing in-process only: spans are created
	// (and propagated) but not exported.
	OTLPEndpoint string
	// Insecure disables TLS to the collector.
	Insecure bool
}

// Setup installs the global tracer provider and the W3C propagators. The
// returned function flushes and stops the exporter.
func Setup(ctx context.Context, cfg Config) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))

	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		semconv.ServiceName(cfg.ServiceName),
		semconv.ServiceVersion(cfg.ServiceVersion),
	))
	if err != nil {
		return nil, fmt.Errorf("building OpenTelemetry resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if cfg.OTLPEndpoint != "" {
		clientOpts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint)}
		if strings.Contains(cfg.OTLPEndpoint, "://") {
			clientOpts = []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(cfg.OTLPEndpoint)}
		}
		if cfg.Insecure {
			clientOpts = append(clientOpts, otlptracegrpc.WithInsecure())
		}
		exporter, err := otlptracegrpc.New(ctx, clientOpts...)
		if err != nil {
			return nil, fmt.Errorf("creating OTLP exporter for %s: %w", cfg.OTLPEndpoint, err)
		}
		opts = append(opts, sdktrace.WithBatcher(exporter))
	}
	provider := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(provider)
	return provider.Shutdown, nil
}
