package funchost

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestInvokeEcho(t *testing.T) {
	f := load(t, newHost(t), goGuest, Config{})
	resp, err := f.Invoke(context.Background(), Request{
		Method: "PUT",
		Path:   "/echo?long=query-past-the-first-buffer",
		Header: http.Header{"X-Status": {"201"}, "X-Test": {"a", "b"}},
		Body:   []byte("hello"),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := http.Header{
		"X-Echo-Method": {"PUT"},
		"X-Echo-Path":   {"/echo?long=query-past-the-first-buffer"},
		"X-Echo-Test":   {"a, b"},
	}
	if resp.Status != http.StatusCreated || string(resp.Body) != "hello" || !equalHeaders(resp.Header, want) {
		t.Errorf("got %d %v %q, want 201 %v \"hello\"", resp.Status, resp.Header, resp.Body, want)
	}

	resp = invoke(t, f, "/echo", "")
	if resp.Status != http.StatusOK || resp.Header.Get("X-Echo-Test") != "absent" || len(resp.Body) != 0 {
		t.Errorf("without headers or body: got %d %v %q", resp.Status, resp.Header, resp.Body)
	}
}

func TestInvokeSmallGuest(t *testing.T) {
	f := load(t, newHost(t), echoReactor(), Config{})
	if got := invoke(t, f, "/", "ping"); string(got.Body) != "ping" || got.Status != http.StatusOK {
		t.Errorf("got %d %q, want 200 \"ping\"", got.Status, got.Body)
	}
}

func TestInvokeBoundedByMaxInstances(t *testing.T) {
	f := load(t, newHost(t), goGuest, Config{MaxInstances: 2})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := f.Invoke(context.Background(), Request{Path: "/spin", Body: []byte("20")}); err != nil {
				t.Error(err)
			}
			if n := f.Instances(); n > 2 {
				t.Errorf("%d instances alive, want at most 2", n)
			}
		})
	}
	wg.Wait()
	if n := f.Instances(); n != 2 {
		t.Errorf("%d instances after the burst, want 2 kept warm", n)
	}
}

func TestInvokeWaitsForAnInstanceUntilTheDeadline(t *testing.T) {
	f := load(t, newHost(t), goGuest, Config{MaxInstances: 1, Timeout: 50 * time.Millisecond})
	ctx := context.Background()
	busy, err := f.pool.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Invoke(ctx, Request{Path: "/echo"}); !errors.Is(err, ErrTimeout) {
		t.Errorf("with the only instance busy: got %v, want ErrTimeout", err)
	}
	if err := f.pool.put(ctx, busy); err != nil {
		t.Fatal(err)
	}
	invoke(t, f, "/echo", "")
}

func TestInvokeDeadlineStopsGuestAndPoolRecovers(t *testing.T) {
	f := load(t, newHost(t), goGuest, Config{MinInstances: 1, MaxInstances: 1, Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := f.Invoke(context.Background(), Request{Path: "/loop"})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("infinite loop: got %v, want ErrTimeout", err)
	}
	t.Logf("infinite loop stopped after %s", time.Since(start))
	if n := f.Instances(); n != 1 {
		t.Errorf("%d instances after the timeout, want the replacement only", n)
	}
	invoke(t, f, "/echo", "")
}

func TestInvokeMemoryLimit(t *testing.T) {
	t.Run("grow refused at the limit", func(t *testing.T) {
		f := load(t, newHost(t), reactor(1,
			wasmFunc{"cairn_alloc", []byte{i32}, []byte{i32}, bodyAllocFixed},
			wasmFunc{"cairn_handle", []byte{i32, i32}, []byte{i64}, bodyGrowUntilRefused},
		), Config{MemoryLimitPages: 5})
		if got := invoke(t, f, "/", ""); len(got.Body) != 5 {
			t.Errorf("memory.grow succeeded up to %d pages, want 5", len(got.Body))
		}
	})
	t.Run("Go guest runs out and is replaced", func(t *testing.T) {
		f := load(t, newHost(t), goGuest, Config{MemoryLimitPages: 256})
		if _, err := f.Invoke(context.Background(), Request{Path: "/grow"}); !errors.Is(err, ErrTrap) {
			t.Fatalf("memory bomb: got %v, want ErrTrap", err)
		}
		invoke(t, f, "/echo", "")
	})
}

func TestInvokeResponseOutOfBoundsIsATrap(t *testing.T) {
	f := load(t, newHost(t), reactor(1,
		wasmFunc{"cairn_alloc", []byte{i32}, []byte{i32}, bodyAllocFixed},
		wasmFunc{"cairn_handle", []byte{i32, i32}, []byte{i64}, bodyOutOfBounds},
	), Config{MinInstances: 1})
	_, err := f.Invoke(context.Background(), Request{Path: "/"})
	if !errors.Is(err, ErrTrap) || !strings.Contains(err.Error(), "out of memory bounds") {
		t.Errorf("got %v, want ErrTrap for a response out of memory bounds", err)
	}
	if n := f.Instances(); n != 1 {
		t.Errorf("%d instances after the trap, want the replacement only", n)
	}
}

func TestInvokeNoFilesOrEnvUnlessGranted(t *testing.T) {
	t.Setenv("HOST_SECRET", "leaked")
	h := newHost(t)
	f := load(t, h, goGuest, Config{})
	if got := invoke(t, f, "/env", ""); len(got.Body) != 0 {
		t.Errorf("environment without grants: got %q, want none", got.Body)
	}
	files := invoke(t, f, "/file", "")
	if lines := strings.Split(string(files.Body), "\n"); len(lines) != 4 {
		t.Errorf("reading files and directories: got errors %q, want all 4 to fail", lines)
	}

	granted := load(t, h, goGuest, Config{Env: map[string]string{"B": "2", "A": "1"}})
	if got := invoke(t, granted, "/env", ""); string(got.Body) != "A=1\nB=2" {
		t.Errorf("granted environment: got %q, want \"A=1\\nB=2\"", got.Body)
	}
}

func TestInvokeStateIsolation(t *testing.T) {
	h := newHost(t)
	pooled := load(t, h, goGuest, Config{MaxInstances: 1})
	other := load(t, h, goGuest, Config{MaxInstances: 1})
	perRequest := load(t, h, goGuest, Config{MaxInstances: 1, Isolation: PerRequest})
	for _, tc := range []struct {
		name string
		f    *Function
		want []string
	}{
		{"pooled instance keeps state", pooled, []string{"1", "2", "3"}},
		{"other function has its own", other, []string{"1"}},
		{"per-request starts afresh", perRequest, []string{"1", "1"}},
	} {
		for i, want := range tc.want {
			if got := invoke(t, tc.f, "/count", ""); string(got.Body) != want {
				t.Errorf("%s: call %d counted %q, want %q", tc.name, i+1, got.Body, want)
			}
		}
	}
	if n := perRequest.Instances(); n != 0 {
		t.Errorf("per-request function keeps %d instances, want 0", n)
	}
}

func TestInvokeSizeLimits(t *testing.T) {
	f := load(t, newHost(t), goGuest, Config{MaxRequestBytes: 4, MaxResponseBytes: 1024})
	if _, err := f.Invoke(context.Background(), Request{Path: "/echo", Body: []byte("12345")}); !errors.Is(err, ErrRequestTooLarge) {
		t.Errorf("5-byte body: got %v, want ErrRequestTooLarge", err)
	}
	if _, err := f.Invoke(context.Background(), Request{Path: "/big"}); !errors.Is(err, ErrResponseTooLarge) {
		t.Errorf("64 KiB response: got %v, want ErrResponseTooLarge", err)
	}
	invoke(t, f, "/echo", "1234")
}

func equalHeaders(got, want http.Header) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if strings.Join(got[k], "\x00") != strings.Join(v, "\x00") {
			return false
		}
	}
	return true
}

func TestCloseLeavesOtherFunctionsServing(t *testing.T) {
	h := newHost(t)
	closed := load(t, h, goGuest, Config{})
	other := load(t, h, goGuest, Config{Isolation: PerRequest}) // instantiates on every call
	if err := closed.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := closed.Invoke(context.Background(), Request{Path: "/echo"}); !errors.Is(err, ErrClosed) {
		t.Errorf("closed function: got %v, want ErrClosed", err)
	}
	invoke(t, other, "/echo", "")
}
