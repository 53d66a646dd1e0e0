package gitops

import "testing"

func TestIsSSH(t *testing.T) {
	for url, want := range map[string]bool{
		"ssh://git@git.example.com/org/repo.git": true,
		"git@github.com:org/repo.git":            true,
		"https://git.example.com/org/repo.git":   false,
		"http://127.0.0.1:8080/repo.git":         false,
		"git://git.example.com/repo.git":         false,
		"file:///srv/git/repo":                   false,
	} {
		if got := isSSH(url); got != want {
			t.Errorf("isSSH(%q) = %v, want %v", url, got, want)
		}
	}
}
