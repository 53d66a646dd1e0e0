package webhook

import (
	"encoding/json"
	"net/http"
	"strings"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
)

// event is what a verified delivery says, as far as a GitRepo cares.
type event struct {
	// ping deliveries (GitHub's on hook creation) only test the hook.
	ping bool
	// ref is the pushed ref ("refs/heads/main", "refs/tags/v1.2.0"); empty
	// when the payload names none.
	ref string
	// delivery identifies the delivery, for dropping redeliveries.
	delivery string
}

func parseEvent(h http.Header, body []byte) event {
	ev := event{delivery: firstHeader(h, "X-GitHub-Delivery", "X-Gitea-Delivery", "X-Gitlab-Event-UUID", "Webhook-Id")}
	kind := firstHeader(h, "X-GitHub-Event", "X-Gitea-Event", "X-Forgejo-Event", "X-Gitlab-Event")
	if strings.EqualFold(kind, "ping") {
		ev.ping = true
		return ev
	}
	var payload struct {
		Ref     string `json:"ref"`
		RefType string `json:"ref_type"` // GitHub/Gitea "create": ref is short
	}
	if json.Unmarshal(body, &payload) == nil {
		ev.ref = payload.Ref
		switch payload.RefType {
		case "branch":
			ev.ref = "refs/heads/" + payload.Ref
		case "tag":
			ev.ref = "refs/tags/" + payload.Ref
		}
	}
	return ev
}

// wanted says whether a push of ev.ref can change what ref selects, and if
// not, why. Unknown payloads trigger: a needless poll costs little, a
// missed one delays a deploy until the next interval.
func wanted(ref *gitopsv1alpha1.GitRef, ev event) (bool, string) {
	if ev.ref == "" {
		return true, ""
	}
	isBranch := strings.HasPrefix(ev.ref, "refs/heads/")
	isTag := strings.HasPrefix(ev.ref, "refs/tags/")
	switch {
	case ref == nil:
		if isBranch {
			return true, ""
		}
		return false, "the GitRepo follows the default branch; " + ev.ref + " is not a branch"
	case ref.Commit != nil:
		return false, "the GitRepo is pinned to a commit"
	case ref.Branch != nil:
		if ev.ref == "refs/heads/"+*ref.Branch {
			return true, ""
		}
		return false, "the GitRepo follows branch " + *ref.Branch + ", not " + ev.ref
	case ref.Tag != nil:
		if ev.ref == "refs/tags/"+*ref.Tag {
			return true, ""
		}
		return false, "the GitRepo follows tag " + *ref.Tag + ", not " + ev.ref
	case ref.SemVer != nil:
		if isTag {
			return true, ""
		}
		return false, "the GitRepo follows tags matching " + *ref.SemVer + "; " + ev.ref + " is not a tag"
	}
	return isBranch, "the GitRepo follows the default branch; " + ev.ref + " is not a branch"
}

func firstHeader(h http.Header, names ...string) string {
	for _, n := range names {
		if v := h.Get(n); v != "" {
			return v
		}
	}
	return ""
}
