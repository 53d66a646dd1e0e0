package funchost

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	f := load(t, newHost(t), goGuest, Config{Timeout: 200 * time.Millisecond, MaxRequestBytes: 16, MaxResponseBytes: 1024})
	srv := httptest.NewServer(Handler{Function: f})
	t.Cleanup(srv.Close)

	for _, tc := range []struct {
		name       string
		path, body string
		header     http.Header
		wantStatus int
		wantBody   string
		wantHeader http.Header
	}{
		{
			name: "echo", path: "/echo?q=1", body: "hello", header: http.Header{"X-Status": {"202"}, "X-Test": {"t"}},
			wantStatus: http.StatusAccepted, wantBody: "hello",
			wantHeader: http.Header{"X-Echo-Method": {"POST"}, "X-Echo-Path": {"/echo?q=1"}, "X-Echo-Test": {"t"}},
		},
		{name: "body over the limit", path: "/echo", body: strings.Repeat("x", 17), wantStatus: http.StatusRequestEntityTooLarge, wantBody: "Request Entity Too Large\n"},
		{name: "response over the limit", path: "/big", wantStatus: http.StatusBadGateway, wantBody: "Bad Gateway\n"},
		{name: "deadline", path: "/loop", wantStatus: http.StatusGatewayTimeout, wantBody: "Gateway Timeout\n"},
		{name: "trap detail stays in the logs", path: "/grow", wantStatus: http.StatusInternalServerError, wantBody: "Internal Server Error\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus || string(body) != tc.wantBody {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			for k, v := range tc.wantHeader {
				if got := resp.Header.Values(k); strings.Join(got, ",") != strings.Join(v, ",") {
					t.Errorf("header %s: got %q, want %q", k, got, v)
				}
			}
		})
	}
}
