// Package source fetches one revision of a Git repository into a directory,
// for the GitRepo controller, with the semantics of Flux's source-controller:
// a branch, a tag, the highest tag matching a semver range, or a pinned
// commit, and revisions written as "<ref>@sha1:<commit>".
//
// Memory stays bounded: objects are always stored on the filesystem (the
// target directory's .git), never in memory, and branch, tag and semver refs
// are cloned shallowly (depth 1, one ref, no other tags), so the size of the
// history does not matter. Only a pinned commit may need the whole history of
// its branch when the server refuses to send a commit by its id.
package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// DefaultDepth is the clone depth used when Request.Depth is zero.
const DefaultDepth = 1

// Ref selects a revision. Set at most one of Branch, Tag, SemVer and Commit;
// none selects the remote's default branch (HEAD). Commit may be combined
// with Branch, which is then fetched to find the commit.
type Ref struct {
	Branch string
	Tag    string
	SemVer string
	Commit string
}

// Auth holds the credentials of a GitRepo's secretRef. For http(s): Username
// and Password (Secret keys "username" and "password"), or Token (Secret key
// "bearerToken"), sent as HTTP basic auth with Token as the password and
// Username, or "git" when empty, as the user, which is what GitHub, GitLab,
// Gitea and Bitbucket accept for access tokens. For ssh: SSHIdentity (a
// private key, Secret key "identity") and KnownHosts (Secret key
// "known_hosts"), which is required: unknown host keys are refused.
type Auth struct {
	Username    string
	Password    string
	Token       string
	SSHIdentity []byte
	KnownHosts  []byte
}

// Request is one fetch.
type Request struct {
	// URL of the repository: https://, http://, ssh://, git://, file:// or
	// scp-like "git@host:org/repo.git".
	URL string
	// Ref selects the revision.
	Ref Ref
	// Auth are the credentials, if any.
	Auth Auth
	// Dir is the directory to check out into: empty or not existing. The
	// objects are kept in Dir/.git.
	Dir string
	// Depth of the clone; 0 means DefaultDepth (1), negative means the whole
	// history.
	Depth int
}

// Artifact is the fetched revision.
type Artifact struct {
	// Revision is "<branch or tag>@sha1:<commit>", or "sha1:<commit>" for a
	// commit fetched without a branch, as Flux writes it.
	Revision string
	// Commit is the hex id of the checked-out commit.
	Commit string
	// Ref is the full name of the fetched ref ("refs/heads/main",
	// "refs/tags/v1.2.3"), empty for a commit fetched without a branch.
	Ref string
	// Dir is the directory holding the checkout.
	Dir string
}

// Fetch checks out the revision req selects into req.Dir. The context's
// deadline bounds the whole fetch. On error req.Dir is left empty (it is
// created when missing).
func Fetch(ctx context.Context, req Request) (Artifact, error) {
	if err := validate(req); err != nil {
		return Artifact{}, err
	}
	if req.Dir == "" {
		return Artifact{}, errors.New("no directory to check out into")
	}
	dir, err := filepath.Abs(req.Dir)
	if err != nil {
		return Artifact{}, fmt.Errorf("checkout directory: %w", err)
	}
	if err := checkEmptyDir(dir); err != nil {
		return Artifact{}, err
	}
	req.Dir = dir
	auth, err := newAuth(req.URL, req.Auth)
	if err != nil {
		return Artifact{}, err
	}
	f := &fetcher{req: req, auth: auth, depth: req.Depth}
	if f.depth == 0 {
		f.depth = DefaultDepth
	}
	if f.depth < 0 {
		f.depth = 0
	}
	art, err := f.fetch(ctx)
	if err != nil {
		cleanDir(dir)
		return Artifact{}, f.explain(ctx, err)
	}
	art.Dir = dir
	return art, nil
}

// LatestCommit resolves req.Ref to a commit id with one request to the
// server that transfers no objects (like git ls-remote), so a poll that finds
// nothing new is cheap. A pinned Commit is returned as is, without
// contacting the server. req.Dir and req.Depth are ignored.
func LatestCommit(ctx context.Context, req Request) (string, error) {
	if err := validate(req); err != nil {
		return "", err
	}
	if req.Ref.Commit != "" {
		return strings.ToLower(req.Ref.Commit), nil
	}
	auth, err := newAuth(req.URL, req.Auth)
	if err != nil {
		return "", err
	}
	f := &fetcher{req: req, auth: auth}
	refs, err := f.list(ctx)
	if err != nil {
		return "", f.explain(ctx, err)
	}
	var name plumbing.ReferenceName
	switch r := req.Ref; {
	case r.Branch != "":
		name = plumbing.NewBranchReferenceName(r.Branch)
	case r.Tag != "":
		name = plumbing.NewTagReferenceName(r.Tag)
	case r.SemVer != "":
		tag, err := pickSemVer(r.SemVer, refs)
		if err != nil {
			return "", err
		}
		name = plumbing.NewTagReferenceName(tag)
	default:
		name = plumbing.HEAD
	}
	h, err := refs.commitOf(name)
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

func validate(req Request) error {
	if req.URL == "" {
		return errors.New("no repository URL")
	}
	n := 0
	for _, s := range []string{req.Ref.Branch, req.Ref.Tag, req.Ref.SemVer, req.Ref.Commit} {
		if s != "" {
			n++
		}
	}
	if n > 1 && (n != 2 || req.Ref.Branch == "" || req.Ref.Commit == "") {
		return errors.New("ref must set at most one of branch, tag, semver or commit (or branch with commit)")
	}
	if c := req.Ref.Commit; c != "" && !isHex(c) {
		return fmt.Errorf("ref commit %q is not a full commit id (40 hex characters)", c)
	}
	return nil
}

func isHex(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, c := range strings.ToLower(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("checkout directory: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("checkout directory %s is not empty", dir)
	}
	return nil
}

// cleanDir empties dir after a failed fetch (go-git leaves .git behind in
// some failure paths), keeping dir itself.
func cleanDir(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

type fetcher struct {
	req   Request
	auth  authMethod
	depth int
}

func (f *fetcher) fetch(ctx context.Context) (Artifact, error) {
	r := f.req.Ref
	switch {
	case r.Commit != "":
		return f.fetchCommit(ctx)
	case r.SemVer != "":
		refs, err := f.list(ctx)
		if err != nil {
			return Artifact{}, err
		}
		tag, err := pickSemVer(r.SemVer, refs)
		if err != nil {
			return Artifact{}, err
		}
		return f.clone(ctx, plumbing.NewTagReferenceName(tag))
	case r.Tag != "":
		return f.clone(ctx, plumbing.NewTagReferenceName(r.Tag))
	case r.Branch != "":
		return f.clone(ctx, plumbing.NewBranchReferenceName(r.Branch))
	default:
		return f.clone(ctx, "")
	}
}

// clone clones one ref (or the remote HEAD when name is empty) with depth
// f.depth into f.req.Dir and checks it out.
func (f *fetcher) clone(ctx context.Context, name plumbing.ReferenceName) (Artifact, error) {
	st, wt := openStorage(f.req.Dir)
	repo, err := git.CloneContext(ctx, st, wt, &git.CloneOptions{
		URL:           f.req.URL,
		Auth:          f.auth,
		ReferenceName: name,
		SingleBranch:  true,
		Depth:         f.depth,
		Tags:          git.NoTags,
	})
	if err != nil {
		return Artifact{}, err
	}
	head, err := repo.Head()
	if err != nil {
		return Artifact{}, fmt.Errorf("reading HEAD of the clone: %w", err)
	}
	if name == "" {
		// HEAD of the clone is the remote's default branch.
		name = head.Name()
	}
	commit := head.Hash().String()
	return Artifact{Revision: name.Short() + "@sha1:" + commit, Commit: commit, Ref: name.String()}, nil
}

// fetchCommit fetches a pinned commit: first asking for the commit alone
// (depth f.depth), which servers allowing any reachable object to be
// requested (GitHub, GitLab, git with uploadpack.allowReachableSHA1InWant)
// accept; when refused, the branch (or every branch) with its whole history,
// into the filesystem.
func (f *fetcher) fetchCommit(ctx context.Context) (Artifact, error) {
	want := plumbing.NewHash(strings.ToLower(f.req.Ref.Commit))
	const local = "refs/cairn/pinned"
	repo, err := f.initRepo()
	if err != nil {
		return Artifact{}, err
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: git.DefaultRemoteName,
		RefSpecs:   []config.RefSpec{config.RefSpec(want.String() + ":" + local)},
		Depth:      f.depth,
		Auth:       f.auth,
		Tags:       git.NoTags,
	})
	if err != nil {
		if ctx.Err() != nil || isAuthError(err) || isRepoError(err) {
			return Artifact{}, err
		}
		// Refused: start again with the history.
		cleanDir(f.req.Dir)
		if repo, err = f.initRepo(); err != nil {
			return Artifact{}, err
		}
		specs := []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"}
		if b := f.req.Ref.Branch; b != "" {
			specs = []config.RefSpec{config.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/remotes/origin/%s", b, b))}
		}
		err = repo.FetchContext(ctx, &git.FetchOptions{
			RemoteName: git.DefaultRemoteName,
			RefSpecs:   specs,
			Auth:       f.auth,
			Tags:       git.NoTags,
		})
		if err != nil {
			if b := f.req.Ref.Branch; b != "" && isNoMatch(err) {
				return Artifact{}, refNotFound("branch", b)
			}
			return Artifact{}, err
		}
	}
	if _, err := repo.CommitObject(want); err != nil {
		where := "the repository"
		if b := f.req.Ref.Branch; b != "" {
			where = fmt.Sprintf("branch %q", b)
		}
		return Artifact{}, newError(fmt.Sprintf("commit %s not found in %s", want, where), ErrNotFound)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return Artifact{}, err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: want, Force: true}); err != nil {
		return Artifact{}, fmt.Errorf("checking out commit %s: %w", want, err)
	}
	art := Artifact{Revision: "sha1:" + want.String(), Commit: want.String()}
	if b := f.req.Ref.Branch; b != "" {
		art.Revision = b + "@" + art.Revision
		art.Ref = plumbing.NewBranchReferenceName(b).String()
	}
	return art, nil
}

func (f *fetcher) initRepo() (*git.Repository, error) {
	repo, err := git.Init(openStorage(f.req.Dir))
	if err != nil {
		return nil, fmt.Errorf("initialising %s: %w", f.req.Dir, err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{f.req.URL}}); err != nil {
		return nil, fmt.Errorf("adding remote: %w", err)
	}
	return repo, nil
}

// Memory bounds of the on-disk object storage: go-git's default object
// cache holds up to 96 MiB, and without a threshold it reads whole objects,
// however large, into memory.
const (
	objectCacheSize      = 8 * cache.MiByte
	largeObjectThreshold = 1 << 20
)

// openStorage returns a filesystem object storage in dir/.git and the
// worktree dir.
func openStorage(dir string) (*filesystem.Storage, billy.Filesystem) {
	wt := osfs.New(dir)
	dot := osfs.New(filepath.Join(dir, git.GitDirName))
	return filesystem.NewStorageWithOptions(dot, cache.NewObjectLRU(objectCacheSize), filesystem.Options{
		LargeObjectThreshold: largeObjectThreshold,
	}), wt
}

// list reads the remote's references without fetching objects. The remote
// lives in a memory storer that holds nothing.
func (f *fetcher) list(ctx context.Context) (remoteRefs, error) {
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{f.req.URL}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: f.auth, PeelingOption: git.AppendPeeled})
	if err != nil {
		return nil, err
	}
	out := make(remoteRefs, len(refs))
	for _, r := range refs {
		out[r.Name()] = r
	}
	return out, nil
}

// remoteRefs are advertised references by name; peeled tags appear as
// "refs/tags/x^{}".
type remoteRefs map[plumbing.ReferenceName]*plumbing.Reference

// commitOf resolves a name to the commit it points at: symbolic references
// are followed and annotated tags peeled.
func (rs remoteRefs) commitOf(name plumbing.ReferenceName) (plumbing.Hash, error) {
	for range 5 {
		r, ok := rs[name]
		if !ok {
			if name == plumbing.HEAD {
				return plumbing.ZeroHash, newError("the repository has no default branch (HEAD)", ErrNotFound)
			}
			return plumbing.ZeroHash, refNotFound(kindOf(name), name.Short())
		}
		if r.Type() == plumbing.SymbolicReference {
			name = r.Target()
			continue
		}
		if p, ok := rs[name+"^{}"]; ok {
			return p.Hash(), nil
		}
		return r.Hash(), nil
	}
	return plumbing.ZeroHash, fmt.Errorf("reference %s: too many symbolic references", name)
}

func kindOf(name plumbing.ReferenceName) string {
	switch {
	case name.IsBranch():
		return "branch"
	case name.IsTag():
		return "tag"
	}
	return "reference"
}

// tags lists the tag names advertised.
func (rs remoteRefs) tags() []string {
	var out []string
	for n := range rs {
		if n.IsTag() && !strings.HasSuffix(string(n), "^{}") {
			out = append(out, n.Short())
		}
	}
	return out
}
