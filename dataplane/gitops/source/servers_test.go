package source

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	gitBin         = "/usr/bin/git"
	gitHTTPBackend = "/usr/lib/git-core/git-http-backend"
)

// gitEnv isolates the system git from the user's and system's config.
func gitEnv(home string) []string {
	return []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_AUTHOR_DATE=2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE=2026-01-01T00:00:00Z",
	}
}

func requireGit(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat(gitBin); err != nil {
		tb.Skipf("system git not available at %s: %v", gitBin, err)
	}
}

// git runs the system git in dir and returns its trimmed stdout.
func runGit(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command(gitBin, args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(tb.TempDir())
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// testRepo is a repository served under root as "repo".
type testRepo struct {
	root, dir string
	commits   map[string]string // label -> commit id
}

func (r *testRepo) commit(tb testing.TB, label, file, content string) string {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, file), []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	runGit(tb, r.dir, "add", file)
	runGit(tb, r.dir, "commit", "-q", "-m", label)
	h := runGit(tb, r.dir, "rev-parse", "HEAD")
	r.commits[label] = h
	return h
}

// newTestRepo builds:
//
//	main: c1 (tag v1.0.0, lightweight) - c2 (tag v1.2.0, annotated) -
//	      c3 (tags v2.0.0-rc.1, not-semver) - c4 (HEAD)
//	dev:  c2 - d1
func newTestRepo(tb testing.TB) *testRepo {
	tb.Helper()
	requireGit(tb)
	root := tb.TempDir()
	r := &testRepo{root: root, dir: filepath.Join(root, "repo"), commits: map[string]string{}}
	runGit(tb, root, "init", "-q", "-b", "main", r.dir)
	r.commit(tb, "c1", "app.yaml", "version: 1.0.0\n")
	runGit(tb, r.dir, "tag", "v1.0.0")
	r.commit(tb, "c2", "app.yaml", "version: 1.2.0\n")
	runGit(tb, r.dir, "tag", "-a", "-m", "release 1.2.0", "v1.2.0")
	r.commit(tb, "c3", "app.yaml", "version: 2.0.0-rc.1\n")
	runGit(tb, r.dir, "tag", "v2.0.0-rc.1")
	runGit(tb, r.dir, "tag", "not-semver")
	r.commit(tb, "c4", "app.yaml", "version: main\n")
	runGit(tb, r.dir, "checkout", "-q", "-b", "dev", r.commits["c2"])
	r.commit(tb, "d1", "dev.yaml", "dev: true\n")
	runGit(tb, r.dir, "checkout", "-q", "main")
	return r
}

// freePort returns a loopback port nothing listens on (racy, as usual).
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// serveGitDaemon serves root over git:// and returns the base URL.
func serveGitDaemon(tb testing.TB, root string) string {
	tb.Helper()
	var lastErr error
	for range 3 {
		port := freePort(tb)
		cmd := exec.Command(gitBin, "daemon", "--base-path="+root, "--export-all", "--reuseaddr",
			"--listen=127.0.0.1", "--port="+strconv.Itoa(port), root)
		cmd.Env = gitEnv(tb.TempDir())
		if err := cmd.Start(); err != nil {
			tb.Fatalf("starting git daemon: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				_ = c.Close()
				tb.Cleanup(func() {
					_ = cmd.Process.Kill()
					<-exited
				})
				return "git://" + addr
			}
			lastErr = err
			select {
			case <-exited:
				deadline = time.Time{} // lost the port race; retry with another
			case <-time.After(20 * time.Millisecond):
			}
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	tb.Fatalf("git daemon did not start: %v", lastErr)
	return ""
}

// serveHTTP serves root through git http-backend behind HTTP basic auth
// (user/pass; empty user means anonymous) and returns the base URL.
func serveHTTP(tb testing.TB, root, user, pass string) string {
	tb.Helper()
	if _, err := os.Stat(gitHTTPBackend); err != nil {
		tb.Skipf("git http-backend not available: %v", err)
	}
	backend := &cgi.Handler{
		Path: gitHTTPBackend,
		Env: append(gitEnv(tb.TempDir()),
			"GIT_PROJECT_ROOT="+root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER="+user),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// sshServer is an in-process SSH server (golang.org/x/crypto/ssh) that runs
// the system git-upload-pack for "git-upload-pack '<path>'" exec requests,
// so the ssh transport is tested against real git without sshd.
type sshServer struct {
	URL        string
	KnownHosts []byte // known_hosts line for the server's host key
	Identity   []byte // OpenSSH private key the server accepts
}

func newSSHKey(tb testing.TB) (ssh.Signer, []byte) {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		tb.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

func serveSSH(tb testing.TB, root string) *sshServer {
	tb.Helper()
	hostKey, _ := newSSHKey(tb)
	client, clientPEM := newSSHKey(tb)
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if string(k.Marshal()) == string(client.PublicKey().Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("unknown key")
		},
	}
	cfg.AddHostKey(hostKey)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(func() { _ = l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { handleSSHConn(c, cfg, root, gitEnv(os.TempDir())) })
		}
	})
	port := l.Addr().(*net.TCPAddr).Port
	line := fmt.Sprintf("[127.0.0.1]:%d %s", port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey.PublicKey()))))
	return &sshServer{
		URL:        fmt.Sprintf("ssh://git@127.0.0.1:%d", port),
		KnownHosts: []byte("# test server\n" + line + "\n"),
		Identity:   clientPEM,
	}
}

func handleSSHConn(c net.Conn, cfg *ssh.ServerConfig, root string, env []string) {
	defer func() { _ = c.Close() }()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSSHSession(ch, chReqs, root, env)
	}
}

func serveSSHSession(ch ssh.Channel, reqs <-chan *ssh.Request, root string, env []string) {
	defer func() { _ = ch.Close() }()
	for req := range reqs {
		if req.Type != "exec" {
			_ = req.Reply(req.Type == "env", nil)
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			_ = req.Reply(false, nil)
			return
		}
		svc, arg, ok := strings.Cut(payload.Command, " ")
		if !ok || svc != "git-upload-pack" {
			_ = req.Reply(false, nil)
			return
		}
		path := filepath.Join(root, strings.Trim(arg, "'/"))
		_ = req.Reply(true, nil)
		cmd := exec.Command(gitBin, "upload-pack", path)
		cmd.Env = env
		cmd.Stdout = ch
		cmd.Stderr = ch.Stderr()
		// Not cmd.Stdin = ch: Wait would wait for the client to close its
		// side, which it does only after the exit status.
		stdin, err := cmd.StdinPipe()
		status := uint32(1)
		if err == nil && cmd.Start() == nil {
			go func() { _, _ = io.Copy(stdin, ch); _ = stdin.Close() }()
			if cmd.Wait() == nil {
				status = 0
			}
		}
		_ = ch.CloseWrite()
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

// hangingServer accepts connections and never answers.
func hangingServer(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	tb.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	return "git://" + l.Addr().String()
}

// testCtx bounds one test's call to a server.
func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	tb.Cleanup(cancel)
	return ctx
}
