package funchost

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// BenchmarkInvoke measures one invocation of an echo guest: the hand-encoded
// one ("small") and the Go one, each pooled and per-request.
func BenchmarkInvoke(b *testing.B) {
	h := newHost(b)
	body := []byte("hello")
	for _, guest := range benchGuests() {
		for _, iso := range []struct {
			name      string
			isolation Isolation
		}{{"pooled", Pooled}, {"per-request", PerRequest}} {
			b.Run(guest.name+"/"+iso.name, func(b *testing.B) {
				f := load(b, h, guest.wasm, Config{Isolation: iso.isolation})
				req := Request{Method: "POST", Path: "/echo", Body: body}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := f.Invoke(context.Background(), req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

type benchGuest struct {
	name string
	wasm []byte
}

func benchGuests() []benchGuest {
	return []benchGuest{{"small", echoReactor()}, {"go", goGuest}}
}

// BenchmarkColdStart measures a cold start up to the first response: a new
// Host (a new runtime, as in a new process), Load (compile, check, first
// instance) and one invocation. "bytes" compiles with an empty cache
// directory, "cache" reads a cache directory warmed by another Host.
// compile-ms is the compilation alone.
func BenchmarkColdStart(b *testing.B) {
	for _, guest := range benchGuests() {
		b.Run(guest.name+"/bytes", func(b *testing.B) {
			var compile time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dir, err := os.MkdirTemp(b.TempDir(), "cache")
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				compile += coldStart(b, dir, guest.wasm)
			}
			b.ReportMetric(float64(compile.Microseconds())/1e3/float64(b.N), "compile-ms")
		})
		b.Run(guest.name+"/cache", func(b *testing.B) {
			dir := b.TempDir()
			coldStart(b, dir, guest.wasm) // warms the cache
			var compile time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				compile += coldStart(b, dir, guest.wasm)
			}
			b.ReportMetric(float64(compile.Microseconds())/1e3/float64(b.N), "compile-ms")
		})
	}
}

// coldStart starts a Host on a cache directory, loads and invokes the guest
// once, and closes the Host; it returns the compile time.
func coldStart(b *testing.B, dir string, wasm []byte) time.Duration {
	ctx := context.Background()
	h, err := New(ctx, Options{CacheDir: dir, Logger: logr.Discard()})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close(ctx)
	f, err := h.Load(ctx, "cold", wasm, Config{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.Invoke(ctx, Request{Method: "POST", Path: "/echo", Body: []byte("hello")}); err != nil {
		b.Fatal(err)
	}
	return f.CompileTime()
}

// BenchmarkHTTP serves the same echo over loopback HTTP from a native Go
// handler, the Go guest pooled, and the Go guest on an instance per request,
// at several client concurrencies; pooled-small is the hand-encoded guest,
// pooled. Every op is a fixed batch of requests; req/s, p50-µs and p99-µs
// are over all requests of the run.
func BenchmarkHTTP(b *testing.B) {
	h := benchHost(b)
	for _, server := range []struct {
		name     string
		requests int // per op
		handler  func(b *testing.B) http.Handler
	}{
		{"native", 2000, func(*testing.B) http.Handler { return http.HandlerFunc(nativeEcho) }},
		{"pooled", 2000, func(b *testing.B) http.Handler {
			return Handler{Function: load(b, h, goGuest, Config{Isolation: Pooled})}
		}},
		// The hand-encoded guest echoes the body without headers: the
		// host's own cost.
		{"pooled-small", 2000, func(b *testing.B) http.Handler {
			return Handler{Function: load(b, h, echoReactor(), Config{Isolation: Pooled})}
		}},
		{"per-request", 200, func(b *testing.B) http.Handler {
			return Handler{Function: load(b, h, goGuest, Config{Isolation: PerRequest})}
		}},
	} {
		for _, concurrency := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/c%d", server.name, concurrency), func(b *testing.B) {
				srv := httptest.NewServer(server.handler(b))
				defer srv.Close()
				transport := &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}
				defer transport.CloseIdleConnections()
				client := &http.Client{Transport: transport}
				var latencies []time.Duration
				var elapsed time.Duration
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					start := time.Now()
					latencies = append(latencies, sendLoad(b, client, srv.URL+"/echo", concurrency, server.requests)...)
					elapsed += time.Since(start)
				}
				b.StopTimer()
				slices.Sort(latencies)
				b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "req/s")
				b.ReportMetric(float64(percentile(latencies, 50).Nanoseconds())/1e3, "p50-µs")
				b.ReportMetric(float64(percentile(latencies, 99).Nanoseconds())/1e3, "p99-µs")
				b.ReportMetric(0, "ns/op") // an op is a batch: ns/op says nothing
			})
		}
	}
}

// nativeEcho does what the Go guest's /echo does.
func nativeEcho(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, DefaultMaxBodyBytes))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	status := http.StatusOK
	if s := r.Header.Get("X-Status"); s != "" {
		if code, err := strconv.Atoi(s); err == nil && code >= 200 && code <= 599 {
			status = code
		}
	}
	test := "absent"
	if values := r.Header.Values("X-Test"); values != nil {
		test = values[0]
	}
	w.Header().Add("X-Echo-Method", r.Method)
	w.Header().Add("X-Echo-Path", r.URL.RequestURI())
	w.Header().Add("X-Echo-Test", test)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body) //nolint:errcheck // the client sees a short body
}

// sendLoad sends requests POSTs from concurrency workers and returns their
// latencies.
func sendLoad(b *testing.B, client *http.Client, url string, concurrency, requests int) []time.Duration {
	latencies := make([]time.Duration, requests)
	var wg sync.WaitGroup
	next := make(chan int, requests)
	for i := range requests {
		next <- i
	}
	close(next)
	body := []byte("hello, function")
	for range concurrency {
		wg.Go(func() {
			for i := range next {
				start := time.Now()
				resp, err := client.Post(url, "text/plain", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
					b.Errorf("got %d %q, %v", resp.StatusCode, got, err)
					return
				}
				latencies[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	return latencies
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)*p/100, len(sorted)-1)]
}

// BenchmarkPoolMemory grows a pool from 1 to n instances, each having served
// one request, and reports the Go heap growth per instance and the pooled
// instances that fit in 1 GiB. Compiled code is shared by the instances of
// a module and not counted.
func BenchmarkPoolMemory(b *testing.B) {
	for _, guest := range []struct {
		benchGuest
		n int
	}{{benchGuests()[0], 256}, {benchGuests()[1], 32}} {
		b.Run(guest.name, func(b *testing.B) {
			h := benchHost(b)
			var perInstance float64
			for i := 0; i < b.N; i++ {
				perInstance += growPool(b, h, guest.wasm, guest.n)
			}
			perInstance /= float64(b.N)
			b.ReportMetric(perInstance/1024, "KiB/instance")
			b.ReportMetric((1<<30)/perInstance, "instances/GiB")
		})
	}
}

// growPool returns the bytes of heap in use per instance added.
func growPool(b *testing.B, h *Host, wasm []byte, n int) float64 {
	ctx := context.Background()
	f, err := h.Load(ctx, "memory", wasm, Config{MaxInstances: n})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close(ctx)
	before := heapInUse()
	instances := make([]*instance, 0, n)
	for range n {
		in, err := f.pool.get(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := in.serve(ctx, &Request{Method: "POST", Path: "/echo", Body: []byte("hello")}, f.cfg.MaxResponseBytes, f.log); err != nil {
			b.Fatal(err)
		}
		instances = append(instances, in)
	}
	after := heapInUse()
	if f.Instances() != n {
		b.Fatalf("%d instances, want %d", f.Instances(), n)
	}
	for _, in := range instances {
		if err := f.pool.put(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	return float64(after-before) / float64(n-1)
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// benchHost is a Host that does not log: benchmark logs are always printed.
func benchHost(b *testing.B) *Host {
	h, err := New(context.Background(), Options{CacheDir: cacheDir, Logger: logr.Discard()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close(context.Background()) })
	return h
}
