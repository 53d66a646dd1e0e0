package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testTimeout = 30 * time.Second

func fetch(t *testing.T, req Request) Artifact {
	t.Helper()
	if req.Dir == "" {
		req.Dir = filepath.Join(t.TempDir(), "checkout")
	}
	art, err := Fetch(testCtx(t), req)
	if err != nil {
		t.Fatalf("Fetch(%+v): %v", req.Ref, err)
	}
	return art
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertShallow checks the checkout holds one commit: .git/shallow exists
// and the system git sees a single reachable commit.
func assertShallow(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, ".git", "shallow")); err != nil {
		t.Errorf("no .git/shallow in a depth-1 clone: %v", err)
	}
	if n := runGit(t, dir, "rev-list", "--count", "HEAD"); n != "1" {
		t.Errorf("reachable commits = %s, want 1", n)
	}
}

func fetchErr(t *testing.T, req Request) error {
	t.Helper()
	if req.Dir == "" {
		req.Dir = filepath.Join(t.TempDir(), "checkout")
	}
	_, err := Fetch(testCtx(t), req)
	if err == nil {
		t.Fatalf("Fetch(%+v) succeeded, want an error", req.Ref)
	}
	if entries, _ := os.ReadDir(req.Dir); len(entries) > 0 {
		t.Errorf("failed Fetch left %d entries in %s", len(entries), req.Dir)
	}
	return err
}

func TestFetchRefs(t *testing.T) {
	r := newTestRepo(t)
	url := serveGitDaemon(t, r.root) + "/repo"
	c := r.commits
	cases := []struct {
		name     string
		ref      Ref
		commit   string
		revision string
		fullRef  string
		file     string
		content  string
	}{
		{"default branch", Ref{}, c["c4"], "main@sha1:" + c["c4"], "refs/heads/main", "app.yaml", "version: main\n"},
		{"branch", Ref{Branch: "dev"}, c["d1"], "dev@sha1:" + c["d1"], "refs/heads/dev", "dev.yaml", "dev: true\n"},
		{"lightweight tag", Ref{Tag: "v1.0.0"}, c["c1"], "v1.0.0@sha1:" + c["c1"], "refs/tags/v1.0.0", "app.yaml", "version: 1.0.0\n"},
		{"annotated tag", Ref{Tag: "v1.2.0"}, c["c2"], "v1.2.0@sha1:" + c["c2"], "refs/tags/v1.2.0", "app.yaml", "version: 1.2.0\n"},
		{"semver caret", Ref{SemVer: "^1.0"}, c["c2"], "v1.2.0@sha1:" + c["c2"], "refs/tags/v1.2.0", "app.yaml", "version: 1.2.0\n"},
		{"semver range", Ref{SemVer: ">=1.0.0, <1.2.0"}, c["c1"], "v1.0.0@sha1:" + c["c1"], "refs/tags/v1.0.0", "app.yaml", "version: 1.0.0\n"},
		{"semver ignores pre-releases", Ref{SemVer: ">=1.0.0"}, c["c2"], "v1.2.0@sha1:" + c["c2"], "refs/tags/v1.2.0", "app.yaml", "version: 1.2.0\n"},
		{"semver allowing pre-releases", Ref{SemVer: ">=2.0.0-0"}, c["c3"], "v2.0.0-rc.1@sha1:" + c["c3"], "refs/tags/v2.0.0-rc.1", "app.yaml", "version: 2.0.0-rc.1\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			art := fetch(t, Request{URL: url, Ref: tc.ref})
			if art.Commit != tc.commit || art.Revision != tc.revision || art.Ref != tc.fullRef {
				t.Errorf("got commit %s revision %s ref %s, want %s %s %s", art.Commit, art.Revision, art.Ref, tc.commit, tc.revision, tc.fullRef)
			}
			if got := readFile(t, art.Dir, tc.file); got != tc.content {
				t.Errorf("%s = %q, want %q", tc.file, got, tc.content)
			}
			assertShallow(t, art.Dir)
			latest, err := LatestCommit(testCtx(t), Request{URL: url, Ref: tc.ref})
			if err != nil || latest != tc.commit {
				t.Errorf("LatestCommit = %s, %v; want %s", latest, err, tc.commit)
			}
		})
	}
}

func TestFetchCommit(t *testing.T) {
	r := newTestRepo(t)
	url := serveGitDaemon(t, r.root) + "/repo"
	c := r.commits

	t.Run("refused by id, whole history fetched", func(t *testing.T) {
		art := fetch(t, Request{URL: url, Ref: Ref{Commit: c["c1"]}})
		if art.Commit != c["c1"] || art.Revision != "sha1:"+c["c1"] || art.Ref != "" {
			t.Errorf("got %+v", art)
		}
		if got := readFile(t, art.Dir, "app.yaml"); got != "version: 1.0.0\n" {
			t.Errorf("app.yaml = %q", got)
		}
		if head := runGit(t, art.Dir, "rev-parse", "HEAD"); head != c["c1"] {
			t.Errorf("HEAD = %s, want %s", head, c["c1"])
		}
	})
	t.Run("with branch", func(t *testing.T) {
		art := fetch(t, Request{URL: url, Ref: Ref{Branch: "dev", Commit: c["c2"]}})
		if art.Commit != c["c2"] || art.Revision != "dev@sha1:"+c["c2"] || art.Ref != "refs/heads/dev" {
			t.Errorf("got %+v", art)
		}
	})
	t.Run("absent", func(t *testing.T) {
		missing := strings.Repeat("ab", 20)
		err := fetchErr(t, Request{URL: url, Ref: Ref{Commit: missing}})
		if want := "commit " + missing + " not found in the repository"; err.Error() != want || !errors.Is(err, ErrNotFound) {
			t.Errorf("error = %q, want %q (ErrNotFound)", err, want)
		}
	})
	t.Run("not on branch", func(t *testing.T) {
		err := fetchErr(t, Request{URL: url, Ref: Ref{Branch: "dev", Commit: c["c4"]}})
		if want := "commit " + c["c4"] + " not found in branch \"dev\""; err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	})
	t.Run("shallow when the server allows wants by id", func(t *testing.T) {
		runGit(t, r.dir, "config", "uploadpack.allowAnySHA1InWant", "true")
		t.Cleanup(func() { runGit(t, r.dir, "config", "--unset", "uploadpack.allowAnySHA1InWant") })
		art := fetch(t, Request{URL: url, Ref: Ref{Commit: c["c2"]}})
		if art.Commit != c["c2"] {
			t.Errorf("got %+v", art)
		}
		assertShallow(t, art.Dir)
	})
	t.Run("LatestCommit does not ask the server", func(t *testing.T) {
		got, err := LatestCommit(testCtx(t), Request{URL: "git://127.0.0.1:1/none", Ref: Ref{Commit: strings.ToUpper(c["c1"])}})
		if err != nil || got != c["c1"] {
			t.Errorf("LatestCommit = %s, %v", got, err)
		}
	})
}

func TestNewCommitIsSeen(t *testing.T) {
	r := newTestRepo(t)
	url := serveGitDaemon(t, r.root) + "/repo"
	ctx := testCtx(t)
	req := Request{URL: url, Ref: Ref{Branch: "main"}}
	before, err := LatestCommit(ctx, req)
	if err != nil || before != r.commits["c4"] {
		t.Fatalf("LatestCommit = %s, %v; want %s", before, err, r.commits["c4"])
	}
	c5 := r.commit(t, "c5", "app.yaml", "version: next\n")
	after, err := LatestCommit(ctx, req)
	if err != nil || after != c5 {
		t.Fatalf("LatestCommit after a push = %s, %v; want %s", after, err, c5)
	}
	art := fetch(t, req)
	if art.Commit != c5 || readFile(t, art.Dir, "app.yaml") != "version: next\n" {
		t.Errorf("Fetch after a push got %+v", art)
	}
	runGit(t, r.dir, "tag", "-a", "-m", "1.3", "v1.3.0")
	semver, err := LatestCommit(ctx, Request{URL: url, Ref: Ref{SemVer: "1.x"}})
	if err != nil || semver != c5 {
		t.Errorf("LatestCommit(semver 1.x) after tagging = %s, %v; want %s", semver, err, c5)
	}
}

func TestMissingRefs(t *testing.T) {
	r := newTestRepo(t)
	base := serveGitDaemon(t, r.root)
	url := base + "/repo"
	cases := []struct {
		name string
		url  string
		ref  Ref
		want string
	}{
		{"branch", url, Ref{Branch: "nope"}, `ref branch "nope" not found`},
		{"tag", url, Ref{Tag: "v9.9.9"}, `ref tag "v9.9.9" not found`},
		{"semver", url, Ref{SemVer: ">=3.0.0"}, `no tag matches semver ">=3.0.0" (tags: v1.0.0, v1.2.0, v2.0.0-rc.1)`},
		{"repository", base + "/absent", Ref{}, "repository " + base + "/absent not found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := fetchErr(t, Request{URL: tc.url, Ref: tc.ref})
			if err.Error() != tc.want || !errors.Is(err, ErrNotFound) {
				t.Errorf("Fetch error = %q, want %q (ErrNotFound)", err, tc.want)
			}
			_, err = LatestCommit(testCtx(t), Request{URL: tc.url, Ref: tc.ref})
			if err == nil || err.Error() != tc.want {
				t.Errorf("LatestCommit error = %v, want %q", err, tc.want)
			}
		})
	}
	t.Run("bad semver range", func(t *testing.T) {
		err := fetchErr(t, Request{URL: url, Ref: Ref{SemVer: "not a range"}})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `ref semver "not a range" is not a semver range`) {
			t.Errorf("error = %v", err)
		}
	})
}

func TestHTTPBasicAuth(t *testing.T) {
	r := newTestRepo(t)
	const user, pass = "alice", "s3cret-p4ss"
	base := serveHTTP(t, r.root, user, pass)
	url := base + "/repo"

	art := fetch(t, Request{URL: url, Auth: Auth{Username: user, Password: pass}})
	if art.Commit != r.commits["c4"] {
		t.Errorf("Fetch over http got %+v", art)
	}
	assertShallow(t, art.Dir)
	latest, err := LatestCommit(testCtx(t), Request{URL: url, Ref: Ref{Tag: "v1.2.0"}, Auth: Auth{Username: user, Password: pass}})
	if err != nil || latest != r.commits["c2"] {
		t.Errorf("LatestCommit over http = %s, %v", latest, err)
	}

	wrong := "wr0ng-p4ssw0rd"
	want := "authentication to " + url + " failed (check secretRef)"
	for _, req := range []Request{
		{URL: url, Auth: Auth{Username: user, Password: wrong}},
		{URL: url, Auth: Auth{Token: wrong}},
		{URL: strings.Replace(url, "http://", "http://"+user+":"+wrong+"@", 1), Auth: Auth{Username: user, Password: wrong}},
		{URL: url, Ref: Ref{Commit: r.commits["c1"]}, Auth: Auth{Username: user, Password: wrong}},
	} {
		err := fetchErr(t, req)
		if err.Error() != want || !errors.Is(err, ErrAuthentication) {
			t.Errorf("Fetch with wrong credentials: %q, want %q", err, want)
		}
		if req.Ref.Commit != "" {
			continue // LatestCommit does not contact the server for a pinned commit
		}
		_, err = LatestCommit(testCtx(t), req)
		if err == nil || err.Error() != want {
			t.Errorf("LatestCommit with wrong credentials: %v, want %q", err, want)
		}
		if err != nil && strings.Contains(err.Error(), wrong) {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	err = fetchErr(t, Request{URL: url})
	if want := "authentication to " + url + " required (set secretRef)"; err.Error() != want {
		t.Errorf("Fetch without credentials: %q, want %q", err, want)
	}
}

func TestHTTPToken(t *testing.T) {
	r := newTestRepo(t)
	const token = "ghp_0123456789abcdef"
	url := serveHTTP(t, r.root, tokenUser, token) + "/repo"
	art := fetch(t, Request{URL: url, Ref: Ref{SemVer: "^1"}, Auth: Auth{Token: token}})
	if art.Revision != "v1.2.0@sha1:"+r.commits["c2"] {
		t.Errorf("Fetch with a token got %+v", art)
	}
}

func TestSSH(t *testing.T) {
	r := newTestRepo(t)
	srv := serveSSH(t, r.root)
	url := srv.URL + "/repo"
	auth := Auth{SSHIdentity: srv.Identity, KnownHosts: srv.KnownHosts}

	art := fetch(t, Request{URL: url, Ref: Ref{Branch: "dev"}, Auth: auth})
	if art.Revision != "dev@sha1:"+r.commits["d1"] {
		t.Errorf("Fetch over ssh got %+v", art)
	}
	assertShallow(t, art.Dir)
	latest, err := LatestCommit(testCtx(t), Request{URL: url, Auth: auth})
	if err != nil || latest != r.commits["c4"] {
		t.Errorf("LatestCommit over ssh = %s, %v", latest, err)
	}

	t.Run("unknown host key", func(t *testing.T) {
		other := serveSSH(t, r.root)
		err := fetchErr(t, Request{URL: url, Auth: Auth{SSHIdentity: srv.Identity, KnownHosts: []byte(strings.Replace(string(other.KnownHosts), other.URL[len("ssh://git@"):], srv.URL[len("ssh://git@"):], 1))}})
		if !errors.Is(err, ErrHostKey) {
			t.Errorf("error = %v, want ErrHostKey", err)
		}
		err = fetchErr(t, Request{URL: url, Auth: Auth{SSHIdentity: srv.Identity, KnownHosts: other.KnownHosts}})
		if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "is not in known_hosts") {
			t.Errorf("error = %v, want ErrHostKey", err)
		}
	})
	t.Run("wrong identity", func(t *testing.T) {
		_, key := newSSHKey(t)
		err := fetchErr(t, Request{URL: url, Auth: Auth{SSHIdentity: key, KnownHosts: srv.KnownHosts}})
		if want := "authentication to " + url + " failed (check secretRef)"; err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
	})
	t.Run("no known_hosts", func(t *testing.T) {
		err := fetchErr(t, Request{URL: url, Auth: Auth{SSHIdentity: srv.Identity}})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("error = %v, want ErrInvalid", err)
		}
	})
}

func TestContextDeadline(t *testing.T) {
	url := hangingServer(t) + "/repo"
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Fetch(ctx, Request{URL: url, Dir: t.TempDir()})
	if !errors.Is(err, context.DeadlineExceeded) || err.Error() != "fetching "+url+" timed out" {
		t.Errorf("Fetch error = %v, want a timeout", err)
	}
	_, err = LatestCommit(ctx, Request{URL: url})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LatestCommit error = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v after a 300ms deadline", d)
	}
}

func TestRequestValidation(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Dir: t.TempDir()}, "no repository URL"},
		{Request{URL: "git://h/r"}, "no directory to check out into"},
		{Request{URL: "git://h/r", Dir: dir}, "is not empty"},
		{Request{URL: "git://h/r", Dir: t.TempDir(), Ref: Ref{Tag: "a", Branch: "b"}}, "at most one"},
		{Request{URL: "git://h/r", Dir: t.TempDir(), Ref: Ref{Commit: "abc"}}, "not a full commit id"},
		{Request{URL: "git@github.com:org/repo.git", Dir: t.TempDir()}, `needs "identity" and "known_hosts"`},
		{Request{URL: "ssh://git@h/r", Dir: t.TempDir(), Auth: Auth{SSHIdentity: []byte("nope"), KnownHosts: []byte("h ssh-ed25519 AAAA")}}, "identity in secretRef cannot be parsed"},
	} {
		_, err := Fetch(context.Background(), tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Fetch(%+v) = %v, want %q", tc.req, err, tc.want)
		}
	}
}

func TestSafeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pa55@git.example.com/org/repo.git": "https://git.example.com/org/repo.git",
		"https://tok@git.example.com/org/repo.git":       "https://git.example.com/org/repo.git",
		"ssh://git@host:2222/repo":                       "ssh://git@host:2222/repo",
		"ssh://git:pw@host/repo":                         "ssh://git@host/repo",
		"git@github.com:org/repo.git":                    "git@github.com:org/repo.git",
		"https://u:p%zz@host/r":                          "https://host/r",
	} {
		if got := SafeURL(in); got != want {
			t.Errorf("SafeURL(%q) = %q, want %q", in, got, want)
		}
	}
}
