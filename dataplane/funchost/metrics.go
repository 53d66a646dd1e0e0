package funchost

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of an invocation: the "result" label of
// cairn_funchost_invocations_total and the cairn.function.result span
// attribute.
const (
	resultOK               = "ok"
	resultTrap             = "trap"               // trapped, exited or broke the ABI
	resultTimeout          = "timeout"            // deadline passed, waiting or running
	resultTooLarge         = "too_large"          // request body over the limit
	resultResponseTooLarge = "response_too_large" // response over the limit
	resultClosed           = "closed"             // Function or Host closed
	resultCanceled         = "canceled"           // caller went away
)

var results = []string{resultOK, resultTrap, resultTimeout, resultTooLarge, resultResponseTooLarge, resultClosed, resultCanceled}

// result classifies an Invoke error.
func result(err error) string {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, ErrRequestTooLarge):
		return resultTooLarge
	case errors.Is(err, ErrResponseTooLarge):
		return resultResponseTooLarge
	case errors.Is(err, ErrTimeout):
		return resultTimeout
	case errors.Is(err, ErrClosed):
		return resultClosed
	case errors.Is(err, ErrTrap):
		return resultTrap
	default:
		return resultCanceled
	}
}

// metrics of one Host. They are kept whether or not they are registered.
type metrics struct {
	invocations *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	compile     prometheus.Histogram
	pools       *poolCollector
}

func newMetrics() *metrics {
	return &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_funchost_invocations_total",
			Help: "Function invocations, by function and result (ok, trap, timeout, too_large, response_too_large, closed, canceled).",
		}, []string{"function", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cairn_funchost_invocation_duration_seconds",
			Help: "Duration of function invocations, waiting for an instance included, by function.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05,
				.1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"function"}),
		compile: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_funchost_compile_duration_seconds",
			Help:    "Time to compile a module, reading the compilation cache included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		pools: &poolCollector{
			desc: prometheus.NewDesc("cairn_funchost_instances",
				"Instances of loaded functions, by function and state: live (busy or idle) or idle.",
				[]string{"function", "state"}, nil),
			functions: map[*Function]struct{}{},
		},
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.invocations, m.duration, m.compile, m.pools} {
		errs = append(errs, r.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registering funchost metrics: %w", err)
	}
	return nil
}

// functionMetrics are the series of one Function, resolved once at Load so
// that an invocation only increments.
type functionMetrics struct {
	results  map[string]prometheus.Counter
	duration prometheus.Observer
}

func (m *metrics) forFunction(name string) functionMetrics {
	fm := functionMetrics{results: make(map[string]prometheus.Counter, len(results)), duration: m.duration.WithLabelValues(name)}
	for _, r := range results {
		fm.results[r] = m.invocations.WithLabelValues(name, r)
	}
	return fm
}

func (fm functionMetrics) observe(res string, d time.Duration) {
	fm.results[res].Inc()
	fm.duration.Observe(d.Seconds())
}

// refused counts a request turned away before the guest ran; it has no
// duration worth a histogram sample.
func (fm functionMetrics) refused(res string) {
	if c, ok := fm.results[res]; ok {
		c.Inc()
	}
}

// loaded starts reporting a Function: its pool and, from then on, its
// invocations.
func (m *metrics) loaded(f *Function) {
	m.pools.mu.Lock()
	defer m.pools.mu.Unlock()
	f.invocations = m.forFunction(f.name)
	m.pools.functions[f] = struct{}{}
}

// closed stops reporting a Function's pool, and drops its series once no
// Function of that name is left: a replacement loaded before the old one
// is closed keeps counting.
func (m *metrics) closed(f *Function) {
	p := m.pools
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.functions[f]; !ok {
		return
	}
	delete(p.functions, f)
	for other := range p.functions {
		if other.name == f.name {
			return
		}
	}
	l := prometheus.Labels{"function": f.name}
	m.invocations.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
}

// poolCollector reports pool sizes when scraped rather than keeping gauges
// in step with every get and put.
type poolCollector struct {
	desc      *prometheus.Desc
	mu        sync.Mutex
	functions map[*Function]struct{}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	type sizes struct{ live, idle int }
	byName := map[string]sizes{}
	c.mu.Lock()
	for f := range c.functions {
		s := byName[f.name] // the old and new versions of an updated Function add up
		s.live += f.pool.size()
		s.idle += len(f.pool.idle)
		byName[f.name] = s
	}
	c.mu.Unlock()
	for name, s := range byName {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.live), name, "live")
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.idle), name, "idle")
	}
}
