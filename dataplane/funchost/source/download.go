package source

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// MaxModuleBytes caps a downloaded module; the Function API caps nothing
// smaller, and a host must not be made to buffer an unbounded body.
const MaxModuleBytes = 64 << 20

// defaultDownloadClient fetches URL modules. Redirects are followed: the
// pinned sha256 is checked on what arrives, wherever it came from.
var defaultDownloadClient = &http.Client{Timeout: 60 * time.Second}

// download fetches a URL module. The caller checks its digest before
// compiling anything.
func download(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	if c == nil {
		c = defaultDownloadClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("downloading %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("downloading %s: HTTP %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxModuleBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if len(body) > MaxModuleBytes {
		return nil, fmt.Errorf("%s is larger than %d MiB", url, MaxModuleBytes>>20)
	}
	return body, nil
}
