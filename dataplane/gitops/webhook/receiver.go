// Package webhook receives push notifications from git servers (GitHub,
// GitLab, Gitea/Forgejo) and asks for a GitRepo sync when a delivery is
// signed with the GitRepo's webhook token and pushes a ref it follows.
//
// The receiver only annotates the GitRepo (ReconcileRequestAnnotation), so
// it can run on every manager replica; the leader's controller does the
// fetch. Deliveries are authenticated before their body is parsed.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
)

// MaxBodyBytes bounds a delivery; push payloads of big pushes reach a few
// MiB (GitHub caps them at 25 MB and drops the commit list first).
const MaxBodyBytes = 8 << 20

// PathPrefix is where GitRepo hooks are served:
// POST /hooks/gitrepos/<namespace>/<name>.
const PathPrefix = "/hooks/gitrepos/"

// Receiver serves the webhook endpoint.
type Receiver struct {
	client  client.Client
	log     logr.Logger
	now     func() time.Time
	metrics *metrics
	seen    *recent
}

// Options configure a Receiver.
type Options struct {
	// Client reads GitRepos and Secrets (the manager's cache) and patches
	// GitRepos.
	Client client.Client
	Log    logr.Logger
	// Registerer gets the receiver's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// New returns a Receiver.
func New(o Options) (*Receiver, error) {
	m := newMetrics()
	if o.Registerer != nil {
		if err := m.register(o.Registerer); err != nil {
			return nil, err
		}
	}
	return &Receiver{client: o.Client, log: o.Log, now: time.Now, metrics: m, seen: newRecent(4096)}, nil
}

// Handler returns the HTTP handler for PathPrefix.
func (r *Receiver) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+PathPrefix+"{namespace}/{name}", r.serve)
	return mux
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	key := types.NamespacedName{Namespace: req.PathValue("namespace"), Name: req.PathValue("name")}
	log := r.log.WithValues("gitrepo", key.String())
	if !signed(req.Header) {
		// Refused before reading a byte of the body or the cluster.
		r.reply(w, "", "unauthorized", http.StatusUnauthorized, ErrNoSignature.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxBodyBytes))
	if err != nil {
		r.reply(w, "", "too_large", http.StatusRequestEntityTooLarge, fmt.Sprintf("payload larger than %d bytes", MaxBodyBytes))
		return
	}

	repo, token, err := r.lookup(req.Context(), key)
	if err != nil {
		log.Error(err, "reading the GitRepo's webhook token")
		r.reply(w, "", "error", http.StatusServiceUnavailable, "cannot read the webhook configuration, retry later")
		return
	}
	// An unknown GitRepo, one without a webhook and a wrong signature look
	// the same from outside, so the endpoint does not reveal which exist.
	provider, verr := Verify(req.Header, body, token, r.now())
	if token == nil || verr != nil {
		reason := "no webhook token configured"
		if token != nil {
			reason = verr.Error()
		}
		log.V(1).Info("refused webhook delivery", "reason", reason, "provider", provider)
		msg := ErrBadSignature.Error()
		if errors.Is(verr, ErrNoSignature) || errors.Is(verr, ErrStale) {
			msg = verr.Error()
		}
		r.reply(w, provider, "unauthorized", http.StatusUnauthorized, msg)
		return
	}

	ev := parseEvent(req.Header, body)
	switch {
	case ev.ping:
		r.reply(w, provider, "ignored", http.StatusOK, "pong")
		return
	case ev.delivery != "" && r.seen.has(key.String()+"/"+ev.delivery):
		r.reply(w, provider, "duplicate", http.StatusOK, "delivery "+ev.delivery+" was already received")
		return
	}
	if ok, why := wanted(repo.Spec.Ref, ev); !ok {
		r.reply(w, provider, "ignored", http.StatusOK, "ignored: "+why)
		return
	}
	if err := r.trigger(req.Context(), repo); err != nil {
		log.Error(err, "requesting a sync")
		r.reply(w, provider, "error", http.StatusServiceUnavailable, "cannot request a sync, retry later")
		return
	}
	// Remembered only once handled, so the git server's retry of a
	// delivery that failed here is not taken for a duplicate.
	if ev.delivery != "" {
		r.seen.add(key.String() + "/" + ev.delivery)
	}
	log.Info("webhook requested a sync", "provider", provider, "ref", ev.ref, "delivery", ev.delivery)
	r.reply(w, provider, "triggered", http.StatusAccepted, "sync requested")
}

// lookup returns the GitRepo and its webhook token; a nil token when the
// GitRepo, its webhook or its Secret key does not exist.
func (r *Receiver) lookup(ctx context.Context, key types.NamespacedName) (*gitopsv1alpha1.GitRepo, []byte, error) {
	var repo gitopsv1alpha1.GitRepo
	if err := r.client.Get(ctx, key, &repo); err != nil {
		return nil, nil, client.IgnoreNotFound(err)
	}
	if repo.Spec.Webhook == nil {
		return &repo, nil, nil
	}
	var secret corev1.Secret
	skey := types.NamespacedName{Namespace: key.Namespace, Name: repo.Spec.Webhook.SecretRef.Name}
	if err := r.client.Get(ctx, skey, &secret); err != nil {
		return &repo, nil, client.IgnoreNotFound(err)
	}
	token := secret.Data[gitopsv1alpha1.WebhookTokenKey]
	if len(token) == 0 {
		return &repo, nil, nil
	}
	return &repo, token, nil
}

// trigger sets the reconcile-request annotation, which the GitRepo
// controller watches.
func (r *Receiver) trigger(ctx context.Context, repo *gitopsv1alpha1.GitRepo) error {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, gitopsv1alpha1.ReconcileRequestAnnotation, r.now().UTC().Format(time.RFC3339Nano))
	if err := r.client.Patch(ctx, repo, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("annotating GitRepo %s/%s: %w", repo.Namespace, repo.Name, err)
	}
	return nil
}

func (r *Receiver) reply(w http.ResponseWriter, provider Provider, result string, code int, msg string) {
	r.metrics.requests.WithLabelValues(string(provider), result).Inc()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg+"\n")
}

// recent remembers the last n delivery ids, so a redelivered (or replayed)
// push does not trigger twice.
type recent struct {
	mu    sync.Mutex
	n     int
	order []string
	set   map[string]bool
}

func newRecent(n int) *recent { return &recent{n: n, set: map[string]bool{}} }

// has reports whether id was recorded.
func (s *recent) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set[id]
}

// add records id and reports whether it was new.
func (s *recent) add(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set[id] {
		return false
	}
	if len(s.order) == s.n {
		delete(s.set, s.order[0])
		s.order = s.order[1:]
	}
	s.order = append(s.order, id)
	s.set[id] = true
	return true
}
