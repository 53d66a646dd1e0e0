package funchost

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLoadRejectsBadModules(t *testing.T) {
	h := newHost(t)
	alloc := wasmFunc{"cairn_alloc", []byte{i32}, []byte{i32}, bodyAllocFixed}
	handle := wasmFunc{"cairn_handle", []byte{i32, i32}, []byte{i64}, bodyEcho}
	for _, tc := range []struct {
		name string
		wasm []byte
		cfg  Config
		want []string
	}{
		{"not wasm", []byte("#!/bin/sh\n"), Config{}, []string{"not a WebAssembly 1.0 binary module"}},
		{"truncated", goGuest[:len(goGuest)/2], Config{}, []string{"compiling function"}},
		{"missing export", reactor(1, alloc), Config{}, []string{`missing export "cairn_handle" (func (param i32 i32) (result i64))`}},
		{
			"wrong signature",
			reactor(1, alloc, wasmFunc{"cairn_handle", []byte{i32, i32}, []byte{i32}, []byte{0x41, 0x00, 0x0b}}),
			Config{},
			[]string{`export "cairn_handle" is func (param i32 i32) (result i32), want func (param i32 i32) (result i64)`},
		},
		{"memory over the limit", reactor(8, alloc, handle), Config{MemoryLimitPages: 4}, []string{"memory starts at 8 pages, over the limit of 4"}},
		{
			"unknown import",
			reactorImporting([]wasmImport{{"cairn", "send_email", []byte{i32}, nil}}, 1, alloc, handle),
			Config{},
			[]string{"instantiating", "send_email"},
		},
		{
			"initialization never returns",
			reactor(1, alloc, handle, wasmFunc{"_initialize", nil, nil, []byte{0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b}}),
			Config{Timeout: 50 * time.Millisecond},
			[]string{"instantiating", "deadline exceeded"},
		},
		{"bad config", echoReactor(), Config{MinInstances: 3, MaxInstances: 2}, []string{"min instances 3 exceed max instances 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.Load(context.Background(), "bad", tc.wasm, tc.cfg)
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			t.Log(err)
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got %q, want it to contain %q", err, want)
				}
			}
		})
	}
	// The Host keeps serving.
	invoke(t, load(t, h, echoReactor(), Config{}), "/", "")
}

func TestLoadUsesCompilationCache(t *testing.T) {
	dir := t.TempDir()
	compile := func() time.Duration {
		h, err := New(context.Background(), Options{CacheDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close(context.Background())
		f, err := h.Load(context.Background(), "echo", goGuest, Config{})
		if err != nil {
			t.Fatal(err)
		}
		return f.CompileTime()
	}
	cold := compile()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("compilation cache directory is empty after compiling")
	}
	warm := compile()
	t.Logf("Go guest (%d KiB): compiled in %s, from the cache in %s", len(goGuest)>>10, cold, warm)
}
