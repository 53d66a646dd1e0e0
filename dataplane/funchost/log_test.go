package funchost

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr/funcr"
)

func TestGuestLogIsAttributedToItsFunction(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, args)
	}, funcr.Options{})
	h, err := New(context.Background(), Options{CacheDir: cacheDir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(context.Background())
	f, err := h.Load(context.Background(), "logger", goGuest, Config{})
	if err != nil {
		t.Fatal(err)
	}
	invoke(t, f, "/log", "hello from the guest")
	mu.Lock()
	defer mu.Unlock()
	want := `"function"="logger" "message"="hello from the guest"`
	for _, l := range lines {
		if strings.Contains(l, want) {
			return
		}
	}
	t.Errorf("log lines %q, want one containing %s", lines, want)
}
