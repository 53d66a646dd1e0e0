package tuf

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Fetcher downloads repository files. Fetch returns an error wrapping
// ErrNotFound when name does not exist and one wrapping ErrTooLarge when it
// is longer than maxBytes.
type Fetcher interface {
	Fetch(ctx context.Context, name string, maxBytes int64) ([]byte, error)
}

// MapFetcher serves files from memory, e.g. a ConfigMap's data.
type MapFetcher map[string][]byte

// Fetch returns a copy of m[name].
func (m MapFetcher) Fetch(_ context.Context, name string, maxBytes int64) ([]byte, error) {
	b, ok := m[name]
	if !ok {
		return nil, errorf(ErrNotFound, "%s: not found", name)
	}
	if int64(len(b)) > maxBytes {
		return nil, tooLarge(name, maxBytes)
	}
	return bytes.Clone(b), nil
}

func tooLarge(name string, maxBytes int64) error {
	return errorf(ErrTooLarge, "%s exceeds the limit of %d bytes", name, maxBytes)
}

// HTTPFetcher downloads files relative to Base.
type HTTPFetcher struct {
	// Base is the repository URL; names are joined to its path.
	Base *url.URL
	// Client defaults to http.DefaultClient.
	Client *http.Client
	// Prepare, if set, adjusts each request, e.g. adds device credentials.
	Prepare func(*http.Request)
}

// Fetch GETs name. A 404 response yields ErrNotFound.
func (f HTTPFetcher) Fetch(ctx context.Context, name string, maxBytes int64) ([]byte, error) {
	if f.Base == nil {
		return nil, errorf(ErrInvalid, "HTTPFetcher has no base URL")
	}
	u := f.Base.JoinPath(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", name, err)
	}
	if f.Prepare != nil {
		f.Prepare(req)
	}
	client := f.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", name, err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only: nothing to report
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, errorf(ErrNotFound, "%s: not found at %s", name, u.Redacted())
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("fetching %s from %s: %s", name, u.Redacted(), resp.Status)
	case resp.ContentLength > maxBytes:
		return nil, tooLarge(name, maxBytes)
	}
	// Read one byte past the limit to tell "exactly maxBytes" from "more".
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", name, err)
	}
	if int64(len(b)) > maxBytes {
		return nil, tooLarge(name, maxBytes)
	}
	return b, nil
}
