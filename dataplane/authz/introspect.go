package authz

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxResponseBytes bounds an introspection response; real ones are a few
// hundred bytes.
const maxResponseBytes = 1 << 20

// statusError is an answer from the introspection endpoint other than 200.
type statusError struct {
	Code int
}

func (e *statusError) Error() string {
	return fmt.Sprintf("introspection endpoint answered HTTP %d", e.Code)
}

// rejected reports a 4xx other than 429: the endpoint refused our request,
// most likely our client credentials, and retrying will not help. A 429 is
// overload, like a 5xx.
func (e *statusError) rejected() bool {
	return e.Code >= 400 && e.Code < 500 && e.Code != http.StatusTooManyRequests
}

// introspect asks p's endpoint about token (RFC 7662 section 2.1).
func introspect(ctx context.Context, client *http.Client, p *Policy, token string) (introspection, error) {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()

	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.Endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return introspection{}, fmt.Errorf("building introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 section 2.3.1: credentials are form-encoded before they go
	// into the basic auth header, so secrets with ':' or '%' survive.
	req.SetBasicAuth(url.QueryEscape(p.ClientID), url.QueryEscape(p.ClientSecret))

	resp, err := client.Do(req)
	if err != nil {
		return introspection{}, fmt.Errorf("calling introspection endpoint: %w", err)
	}
	defer func() { _ = resp.Body.Close() }() // a read-only body: nothing to report
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return introspection{}, fmt.Errorf("reading introspection response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return introspection{}, &statusError{Code: resp.StatusCode}
	}
	if len(body) > maxResponseBytes {
		return introspection{}, fmt.Errorf("introspection response larger than %d bytes", maxResponseBytes)
	}
	return parseIntrospection(body)
}
