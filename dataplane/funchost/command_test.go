package funchost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// buildCommandGuest compiles testdata/guests/cmd as a wasip1 command.
func buildCommandGuest(out string) ([]byte, error) {
	cmd := exec.Command("go", "build", "-o", out, "./testdata/guests/cmd")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if output, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building Go command guest: %w\n%s", err, output)
	}
	return os.ReadFile(out)
}

var commandConfig = Config{ABI: Command, Isolation: PerRequest}

func TestCommandInvoke(t *testing.T) {
	f := load(t, newHost(t), cmdGuest, commandConfig)
	resp := invoke(t, f, "/a?b=c", "hello")
	if resp.Status != http.StatusOK || string(resp.Body) != "POST /a?b=c: HELLO" {
		t.Errorf("got %d %q", resp.Status, resp.Body)
	}
	// Every request runs a fresh instance: no state carries over.
	for range 2 {
		if resp := invoke(t, f, "/", "count"); string(resp.Body) != "runs 1" {
			t.Errorf("count: got %q, want \"runs 1\"", resp.Body)
		}
	}
}

func TestCommandEnvAndArgs(t *testing.T) {
	cfg := commandConfig
	cfg.Env = map[string]string{"GRANTED": "yes", "CAIRN_METHOD": "overridden"}
	f := load(t, newHost(t), cmdGuest, cfg)
	resp, err := f.Invoke(context.Background(), Request{
		Method: "GET", Path: "/p", Header: http.Header{"X-Trace-Id": {"a", "b"}}, Body: []byte("env"),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(string(resp.Body), "\n")
	want := []string{"CAIRN_HEADER_X_TRACE_ID=a, b", "CAIRN_METHOD=GET", "CAIRN_PATH=/p", "GRANTED=yes", "args " + t.Name()}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCommandHandler(t *testing.T) {
	srv := httptest.NewServer(Handler{Function: load(t, newHost(t), cmdGuest, commandConfig)})
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{"hi", http.StatusOK, "PUT /x: HI"},
		{"fail", http.StatusBadGateway, http.StatusText(http.StatusBadGateway) + "\n"},
	} {
		req, err := http.NewRequest(http.MethodPut, srv.URL+"/x", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, resp); resp.StatusCode != tc.code || got != tc.want {
			t.Errorf("%q: got %d %q, want %d %q", tc.body, resp.StatusCode, got, tc.code, tc.want)
		}
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCommandExitCode(t *testing.T) {
	f := load(t, newHost(t), cmdGuest, commandConfig)
	_, err := f.Invoke(context.Background(), Request{Method: "POST", Path: "/", Body: []byte("fail")})
	var exit *ExitError
	if !errors.As(err, &exit) || exit.Code != 3 || !errors.Is(err, ErrExit) || StatusCode(err) != http.StatusBadGateway {
		t.Fatalf("got %v, want exit code 3 mapped to 502", err)
	}
	if resp := invoke(t, f, "/", "ok"); string(resp.Body) != "POST /: OK" {
		t.Errorf("after a failure: got %q", resp.Body)
	}
}

func TestCommandDeadline(t *testing.T) {
	cfg := commandConfig
	cfg.Timeout = 200 * time.Millisecond
	f := load(t, newHost(t), cmdGuest, cfg)
	start := time.Now()
	_, err := f.Invoke(context.Background(), Request{Method: "POST", Path: "/", Body: []byte("loop")})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("stopped after %s, want about %s", d, cfg.Timeout)
	}
	if resp := invoke(t, f, "/", "ok"); string(resp.Body) != "POST /: OK" {
		t.Errorf("after a timeout: got %q", resp.Body)
	}
}

func TestCommandResponseTooLarge(t *testing.T) {
	f := load(t, newHost(t), cmdGuest, commandConfig)
	_, err := f.Invoke(context.Background(), Request{Method: "POST", Path: "/", Body: []byte("big")})
	if !errors.Is(err, ErrResponseTooLarge) || StatusCode(err) != http.StatusBadGateway {
		t.Fatalf("got %v, want ErrResponseTooLarge", err)
	}
	cfg := commandConfig
	cfg.MaxResponseBytes = 4 << 20
	f = load(t, newHost(t), cmdGuest, cfg)
	if resp := invoke(t, f, "/", "big"); len(resp.Body) != 2<<20 {
		t.Errorf("under a 4 MiB limit: got %d bytes, want 2 MiB", len(resp.Body))
	}
}

func TestCommandLoadRejects(t *testing.T) {
	h := newHost(t)
	for _, tc := range []struct {
		name string
		wasm []byte
		cfg  Config
		want string
	}{
		{"pooled", cmdGuest, Config{ABI: Command}, "the Command ABI requires PerRequest isolation"},
		{"reactor as command", goGuest, commandConfig, `missing export "_start"`},
		{"cairn imports", reactorImporting([]wasmImport{{"cairn", "log", []byte{i32, i32}, nil}}, 1, wasmFunc{"_start", nil, nil, []byte{0x0b}}), commandConfig, `commands may import only "wasi_snapshot_preview1"`},
		{"no memory", echoReactor()[:8], commandConfig, `missing export "memory"`},
	} {
		_, err := h.Load(context.Background(), tc.name, tc.wasm, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
