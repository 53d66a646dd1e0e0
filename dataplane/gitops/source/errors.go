package source

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Errors Fetch and LatestCommit wrap, for callers choosing a condition
// reason with errors.Is. Messages never contain passwords, tokens or keys.
var (
	// ErrAuthentication: the server refused the credentials, or needs some.
	ErrAuthentication = errors.New("authentication failed")
	// ErrHostKey: the ssh server's host key is not in known_hosts.
	ErrHostKey = errors.New("host key not trusted")
	// ErrNotFound: the repository, branch, tag or commit does not exist, or
	// no tag matches the semver range.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request cannot be used (bad semver range, bad key, …).
	ErrInvalid = errors.New("invalid request")
)

// sourceError carries a message written for people and the sentinels (and
// context errors) it matches. It deliberately does not unwrap to go-git's
// error, whose text may hold a URL with credentials.
type sourceError struct {
	msg string
	is  []error
}

func (e *sourceError) Error() string   { return e.msg }
func (e *sourceError) Unwrap() []error { return e.is }

func newError(msg string, is ...error) error { return &sourceError{msg: msg, is: is} }

func refNotFound(kind, name string) error {
	return newError(fmt.Sprintf("ref %s %q not found", kind, name), ErrNotFound)
}

// explain turns an error from go-git into one a person understands, with
// the URL's userinfo and every secret removed.
func (f *fetcher) explain(ctx context.Context, err error) error {
	var se *sourceError
	if errors.As(err, &se) {
		return err
	}
	u := SafeURL(f.req.URL)
	if cerr := ctx.Err(); cerr != nil {
		what := "cancelled"
		if errors.Is(cerr, context.DeadlineExceeded) {
			what = "timed out"
		}
		return newError(fmt.Sprintf("fetching %s %s", u, what), cerr)
	}
	r := f.req.Ref
	switch {
	case isAuthError(err):
		if f.auth == nil {
			return newError(fmt.Sprintf("authentication to %s required (set secretRef)", u), ErrAuthentication)
		}
		return newError(fmt.Sprintf("authentication to %s failed (check secretRef)", u), ErrAuthentication)
	case isHostUnknown(err):
		return newError(fmt.Sprintf("host key of %s is not in known_hosts (check secretRef)", u), ErrHostKey)
	case isHostKeyChanged(err):
		return newError(fmt.Sprintf("host key of %s does not match known_hosts (check secretRef)", u), ErrHostKey)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return newError(fmt.Sprintf("repository %s not found", u), ErrNotFound)
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return newError(fmt.Sprintf("repository %s is empty", u), ErrNotFound)
	case isNoMatch(err) && r.Tag != "":
		return refNotFound("tag", r.Tag)
	case isNoMatch(err) && r.Branch != "":
		return refNotFound("branch", r.Branch)
	case isNoMatch(err) && r.SemVer != "":
		return newError(fmt.Sprintf("tag selected by semver %q vanished from %s; retry", r.SemVer, u), ErrNotFound)
	}
	return newError(fmt.Sprintf("fetching %s: %s", u, f.redact(err.Error())))
}

func isAuthError(err error) bool {
	if errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) {
		return true
	}
	// golang.org/x/crypto/ssh has no sentinel for a refused key.
	return strings.Contains(err.Error(), "unable to authenticate")
}

func isRepoError(err error) bool {
	return errors.Is(err, transport.ErrRepositoryNotFound) || errors.Is(err, transport.ErrEmptyRemoteRepository) ||
		isHostUnknown(err) || isHostKeyChanged(err)
}

// isHostUnknown: no known_hosts line names the host.
func isHostUnknown(err error) bool {
	var ke *knownhosts.KeyError
	return errors.As(err, &ke) && len(ke.Want) == 0
}

// isHostKeyChanged: known_hosts names the host with other keys.
func isHostKeyChanged(err error) bool {
	var ke *knownhosts.KeyError
	return errors.As(err, &ke) && len(ke.Want) > 0
}

func isNoMatch(err error) bool {
	return errors.Is(err, git.NoMatchingRefSpecError{}) || errors.Is(err, plumbing.ErrReferenceNotFound)
}

// redact removes the raw URL (which may carry userinfo) and the secrets
// from an error message.
func (f *fetcher) redact(msg string) string {
	if f.req.URL != "" {
		msg = strings.ReplaceAll(msg, f.req.URL, SafeURL(f.req.URL))
	}
	secrets := []string{f.req.Auth.Password, f.req.Auth.Token}
	if u, err := url.Parse(f.req.URL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p, url.QueryEscape(p), u.User.String())
		}
	}
	for _, s := range secrets {
		if len(s) >= 3 {
			msg = strings.ReplaceAll(msg, s, "<redacted>")
		}
	}
	return msg
}

// SafeURL returns rawURL without userinfo, for messages. ssh URLs keep the
// user name (not the password); scp-like URLs ("git@host:repo") carry only a
// user name and are returned unchanged. http(s) user names are dropped too:
// some servers take a token as the user name.
func SafeURL(rawURL string) string {
	i := strings.Index(rawURL, "://")
	if i < 0 {
		return rawURL
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// Drop anything between the scheme and the last '@' of the authority.
		rest := rawURL[i+3:]
		if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
			rest = rest[at+1:]
		}
		return rawURL[:i+3] + rest
	}
	if u.Scheme == "ssh" && u.User != nil {
		// An ssh user name ("git") is no secret; a password is.
		u.User = url.User(u.User.Username())
	} else {
		u.User = nil
	}
	return u.String()
}
