package authz

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func endpointPolicy(url string) *Policy {
	return &Policy{Endpoint: url, ClientID: "cairn app", ClientSecret: "p@ss:w%rd", Timeout: 2 * time.Second}
}

func TestIntrospectSendsAnRFC7662Request(t *testing.T) {
	type seen struct {
		method, contentType, accept, token, hint, user, pass string
		basic                                                bool
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		user, _ = url.QueryUnescape(user)
		pass, _ = url.QueryUnescape(pass)
		if err := r.ParseForm(); err != nil {
			t.Errorf("parsing form: %v", err)
		}
		got <- seen{r.Method, r.Header.Get("Content-Type"), r.Header.Get("Accept"), r.PostForm.Get("token"),
			r.PostForm.Get("token_type_hint"), user, pass, ok}
		_, _ = w.Write([]byte(`{"active":true,"sub":"ada","scope":"a b"}`))
	}))
	defer srv.Close()

	in, err := introspect(context.Background(), defaultHTTPClient(), endpointPolicy(srv.URL), "tok&en=1")
	if err != nil {
		t.Fatal(err)
	}
	if !in.Active || in.Subject != "ada" || len(in.Scopes) != 2 {
		t.Errorf("introspection = %+v", in)
	}
	want := seen{http.MethodPost, "application/x-www-form-urlencoded", "application/json", "tok&en=1", "access_token",
		"cairn app", "p@ss:w%rd", true}
	if s := <-got; s != want {
		t.Errorf("endpoint saw %+v, want %+v", s, want)
	}
}

func TestIntrospectStatusErrors(t *testing.T) {
	for code, rejected := range map[int]bool{
		http.StatusUnauthorized:        true,
		http.StatusBadRequest:          true,
		http.StatusForbidden:           true,
		http.StatusTooManyRequests:     false,
		http.StatusInternalServerError: false,
		http.StatusBadGateway:          false,
		http.StatusNoContent:           false,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(code)
		}))
		_, err := introspect(context.Background(), defaultHTTPClient(), endpointPolicy(srv.URL), "t")
		srv.Close()
		var se *statusError
		if !errors.As(err, &se) || se.Code != code || se.rejected() != rejected {
			t.Errorf("HTTP %d: err = %v, want a statusError with Rejected() = %v", code, err, rejected)
		}
	}
}

func TestIntrospectDoesNotFollowRedirects(t *testing.T) {
	var followed atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	defer target.Close()
	srv := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusTemporaryRedirect))
	defer srv.Close()

	_, err := introspect(context.Background(), defaultHTTPClient(), endpointPolicy(srv.URL), "t")
	var se *statusError
	if !errors.As(err, &se) || se.Code != http.StatusTemporaryRedirect {
		t.Fatalf("err = %v, want the redirect as a statusError", err)
	}
	if followed.Load() {
		t.Fatal("the token was sent on to the redirect target")
	}
}

func TestIntrospectMalformedAndOversizedAnswers(t *testing.T) {
	for name, body := range map[string]string{
		"malformed": `{"active":`,
		"oversized": `{"active":true,"sub":"` + strings.Repeat("x", maxResponseBytes) + `"}`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(body))
		}))
		_, err := introspect(context.Background(), defaultHTTPClient(), endpointPolicy(srv.URL), "t")
		srv.Close()
		if err == nil {
			t.Errorf("%s answer: no error", name)
		}
	}
}

func TestIntrospectTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	defer srv.Close()
	defer close(release)
	p := endpointPolicy(srv.URL)
	p.Timeout = 50 * time.Millisecond

	start := time.Now()
	_, err := introspect(context.Background(), defaultHTTPClient(), p, "t")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline exceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("took %v with a 50ms timeout", elapsed)
	}
}

func TestIntrospectEndpointDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	_, err := introspect(context.Background(), defaultHTTPClient(), endpointPolicy(srv.URL), "t")
	var se *statusError
	if err == nil || errors.As(err, &se) || !strings.Contains(err.Error(), "calling introspection endpoint") {
		t.Fatalf("err = %v, want a transport error", err)
	}
}
