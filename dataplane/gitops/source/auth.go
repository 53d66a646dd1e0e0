package source

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

type authMethod = transport.AuthMethod

// tokenUser is the user name sent with a token when none is given; GitHub,
// GitLab, Gitea and Bitbucket ignore it and check the token.
const tokenUser = "git"

// isSSH matches the GitRepo controller: ssh:// and scp-like URLs.
func isSSH(rawURL string) bool {
	return strings.HasPrefix(rawURL, "ssh://") || !strings.Contains(rawURL, "://")
}

func isHTTP(rawURL string) bool {
	return strings.HasPrefix(rawURL, "https://") || strings.HasPrefix(rawURL, "http://")
}

// newAuth builds go-git credentials for the URL's transport. It returns nil
// (anonymous) for http(s) without credentials and for git:// and file://.
// An ssh URL always needs an identity and known_hosts: go-git's defaults
// (ssh-agent, ~/.ssh/known_hosts) are never used.
func newAuth(rawURL string, a Auth) (authMethod, error) {
	switch {
	case isHTTP(rawURL):
		switch {
		case a.Token != "":
			user := a.Username
			if user == "" {
				user = tokenUser
			}
			return &githttp.BasicAuth{Username: user, Password: a.Token}, nil
		case a.Username != "" || a.Password != "":
			return &githttp.BasicAuth{Username: a.Username, Password: a.Password}, nil
		}
		return nil, nil
	case isSSH(rawURL):
		return newSSHAuth(rawURL, a)
	}
	return nil, nil
}

func newSSHAuth(rawURL string, a Auth) (authMethod, error) {
	if len(a.SSHIdentity) == 0 || len(a.KnownHosts) == 0 {
		return nil, newError(fmt.Sprintf("ssh URL %s needs \"identity\" and \"known_hosts\" in secretRef", SafeURL(rawURL)), ErrInvalid)
	}
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, newError(fmt.Sprintf("URL %s is not valid", SafeURL(rawURL)), ErrInvalid)
	}
	user := ep.User
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeys(user, a.SSHIdentity, a.Password)
	if err != nil {
		var pm *ssh.PassphraseMissingError
		if errors.As(err, &pm) {
			return nil, newError("ssh identity in secretRef is encrypted and no \"password\" is given", ErrInvalid)
		}
		return nil, newError("ssh identity in secretRef cannot be parsed (want a PEM or OpenSSH private key): "+scrubKeyError(err), ErrInvalid)
	}
	db, err := knownHostsDB(a.KnownHosts)
	if err != nil {
		return nil, newError("known_hosts in secretRef cannot be parsed: "+err.Error(), ErrInvalid)
	}
	port := ep.Port
	if port == 0 {
		port = 22
	}
	keys.HostKeyCallback = db.HostKeyCallback()
	keys.HostKeyAlgorithms = db.HostKeyAlgorithms(net.JoinHostPort(ep.Host, strconv.Itoa(port)))
	return keys, nil
}

func scrubKeyError(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	return msg
}

// knownHostsDB parses known_hosts content. The parser reads files only, so
// the content goes through a temporary file removed at once.
func knownHostsDB(content []byte) (db interface {
	HostKeyCallback() ssh.HostKeyCallback
	HostKeyAlgorithms(string) []string
}, err error) {
	f, err := os.CreateTemp("", "cairn-known-hosts-*")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.Remove(f.Name()) }()
	if _, err := f.Write(content); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	hkdb, err := gitssh.NewKnownHostsDb(f.Name())
	if err != nil {
		return nil, strip(err, f.Name())
	}
	return hkdb, nil
}

func strip(err error, path string) error {
	return errors.New(strings.ReplaceAll(err.Error(), path+":", "line "))
}
