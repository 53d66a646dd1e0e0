package server

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// maxTargetPath bounds the length of a target path in bytes.
const maxTargetPath = 512

var (
	metadataFileRE = regexp.MustCompile(`^([1-9][0-9]*\.)?(root|targets|snapshot|timestamp)\.json$`)
	dnsLabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// validLabel reports whether s is a DNS-1123 label (namespaces, repository names).
func validLabel(s string) bool {
	return len(s) <= 63 && dnsLabelRE.MatchString(s)
}

// validSHA256 reports whether s is 64 lower-case hex digits. Only strings
// passing this check are used in cache file names.
func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validMetadataFile reports whether file is a TUF metadata file name.
func validMetadataFile(file string) bool {
	return len(file) <= 64 && metadataFileRE.MatchString(file)
}

// validTargetPath accepts relative, slash-separated paths of at most
// maxTargetPath bytes without empty, "." or ".." segments, backslashes or
// control characters. Target paths are only handed to Config.Target, never
// used to build file names, but they are still checked strictly.
func validTargetPath(p string) bool {
	if p == "" || len(p) > maxTargetPath || !utf8.ValidString(p) {
		return false
	}
	if strings.HasPrefix(p, "/") || strings.ContainsRune(p, '\\') {
		return false
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
