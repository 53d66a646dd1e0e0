package funchost

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Handler serves one Function over HTTP.
type Handler struct {
	Function *Function
}

// ServeHTTP passes the method, request URI, headers and body to the guest.
// The invocation's span joins the trace of W3C traceparent headers.
// Failures get a generic body; their detail is only logged, as guest errors
// may reveal its internals.
func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := h.Function
	body, err := readBody(r, f.cfg.MaxRequestBytes)
	if err != nil {
		if errors.Is(err, ErrRequestTooLarge) {
			f.invocations.refused(resultTooLarge)
		}
		h.fail(w, err)
		return
	}
	resp, err := f.Invoke(extractTrace(r), Request{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header, Body: body})
	if err != nil {
		h.fail(w, err)
		return
	}
	for name, values := range resp.Header {
		w.Header()[name] = values
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	if _, err := w.Write(resp.Body); err != nil {
		f.log.V(1).Info("writing response", "error", err.Error())
	}
}

// readBody reads at most limit bytes, refusing larger bodies before
// reading them when the client announced their length.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fmt.Errorf("%w: Content-Length %d exceeds the limit of %d", ErrRequestTooLarge, r.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: over the limit of %d bytes", ErrRequestTooLarge, limit)
	}
	return body, nil
}

func (h Handler) fail(w http.ResponseWriter, err error) {
	code := StatusCode(err)
	if code >= http.StatusInternalServerError {
		h.Function.log.Error(err, "invocation failed")
	}
	http.Error(w, http.StatusText(code), code)
}

// StatusCode maps an Invoke error to the HTTP status a client sees.
func StatusCode(err error) int {
	switch {
	case errors.Is(err, ErrRequestTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrResponseTooLarge), errors.Is(err, ErrExit):
		return http.StatusBadGateway
	case errors.Is(err, ErrClosed):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
