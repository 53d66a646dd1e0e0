package source

import (
	"fmt"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
)

// maxListedTags bounds the tags named in a "no tag matches" message.
const maxListedTags = 10

// pickSemVer returns the name of the highest advertised tag matching the
// range. Tags that are not semantic versions are ignored; pre-releases
// match only ranges that name a pre-release (Masterminds semantics, as in
// Flux).
func pickSemVer(rng string, refs remoteRefs) (string, error) {
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return "", newError(fmt.Sprintf("ref semver %q is not a semver range: %v", rng, err), ErrInvalid)
	}
	type tv struct {
		name string
		v    *semver.Version
	}
	var all []tv
	for _, name := range refs.tags() {
		v, err := semver.NewVersion(name)
		if err != nil {
			continue
		}
		all = append(all, tv{name, v})
	}
	sort.Slice(all, func(i, j int) bool {
		if c := all[i].v.Compare(all[j].v); c != 0 {
			return c < 0
		}
		return all[i].name > all[j].name // equal versions: "1.0.0" wins over "v1.0.0", deterministically
	})
	for i := len(all) - 1; i >= 0; i-- {
		if c.Check(all[i].v) {
			return all[i].name, nil
		}
	}
	if len(all) == 0 {
		return "", newError(fmt.Sprintf("no tag matches semver %q (no semver tags)", rng), ErrNotFound)
	}
	names := make([]string, 0, maxListedTags)
	start := max(len(all)-maxListedTags, 0)
	for _, t := range all[start:] {
		names = append(names, t.name)
	}
	list := strings.Join(names, ", ")
	if start > 0 {
		list = fmt.Sprintf("%d older, …, %s", start, list)
	}
	return "", newError(fmt.Sprintf("no tag matches semver %q (tags: %s)", rng, list), ErrNotFound)
}
