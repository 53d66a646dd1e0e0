package edgehub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/controllers/edge"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/internal/kube"
)

// Device credential Secrets hold only the credential's sha256: a leaked
// Secret does not let anyone connect.
const (
	credentialSecretType = "edge.cairn.dev/device-credential"
	credentialHashKey    = "sha256"
	deviceLabel          = "edge.cairn.dev/device"
)

// CredentialSecretName is the Secret holding a device's credential hash.
// Deleting it revokes the device: the hub disconnects it and refuses it.
func CredentialSecretName(device string) string { return device + "-credentials" }

// credentials checks and issues device credentials.
type credentials struct {
	// cached reads; reader reads through when the cache lags behind a
	// credential just issued.
	cached client.Client
	reader client.Reader
}

// checkBootstrap tells whether token is dev's bootstrap token.
func (c *credentials) checkBootstrap(ctx context.Context, dev protocol.Device, token string) bool {
	var d edgev1alpha1.EdgeDevice
	if err := c.cached.Get(ctx, types.NamespacedName{Namespace: dev.Namespace, Name: dev.Name}, &d); err != nil {
		return false
	}
	// Read through the cache: a revoked token's Secret is deleted and at
	// once recreated with a new token under the same name, and a lagging
	// cache must not let the old token join.
	var s corev1.Secret
	key := types.NamespacedName{Namespace: dev.Namespace, Name: edge.BootstrapSecretName(&d)}
	if err := c.reader.Get(ctx, key, &s); err != nil {
		return false
	}
	want := string(s.Data[edge.BootstrapTokenKey])
	return want != "" && token != "" && equalSecret(want, token)
}

// checkCredential tells whether credential is dev's current credential.
func (c *credentials) checkCredential(ctx context.Context, dev protocol.Device, credential string) bool {
	if credential == "" {
		return false
	}
	want := hashCredential(credential)
	key := types.NamespacedName{Namespace: dev.Namespace, Name: CredentialSecretName(dev.Name)}
	for _, r := range []client.Reader{c.cached, c.reader} {
		var s corev1.Secret
		found, err := kube.GetIfExists(ctx, r, key, &s)
		if err == nil && found && equalSecret(string(s.Data[credentialHashKey]), want) {
			return true
		}
	}
	return false
}

// issue makes a new credential for dev, replacing any earlier one (a device
// that joins again after a reset gets a fresh credential; the old one stops
// working).
func (c *credentials) issue(ctx context.Context, dev protocol.Device) (string, error) {
	var d edgev1alpha1.EdgeDevice
	if err := c.cached.Get(ctx, types.NamespacedName{Namespace: dev.Namespace, Name: dev.Name}, &d); err != nil {
		return "", fmt.Errorf("reading EdgeDevice %s: %w", dev, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generating credential: %w", err)
	}
	credential := base64.RawURLEncoding.EncodeToString(raw)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: dev.Namespace, Name: CredentialSecretName(dev.Name)}}
	_, err := controllerutil.CreateOrUpdate(ctx, c.cached, secret, func() error {
		secret.Labels = map[string]string{deviceLabel: dev.Name}
		secret.Type = credentialSecretType
		secret.Data = map[string][]byte{credentialHashKey: []byte(hashCredential(credential))}
		return controllerutil.SetControllerReference(&d, secret, c.cached.Scheme())
	})
	if apierrors.IsInvalid(err) {
		// The type of an existing Secret is immutable: someone else's Secret
		// has the name; do not overwrite it.
		return "", fmt.Errorf("secret %s exists and is not a device credential: %w", secret.Name, err)
	}
	if err != nil {
		return "", fmt.Errorf("storing the credential of %s: %w", dev, err)
	}
	return credential, nil
}

// AuthenticateDevice checks a device's credential as the MQTT listener
// does; the OTA server uses it for HTTP basic authentication.
func (h *Hub) AuthenticateDevice(ctx context.Context, dev protocol.Device, credential string) bool {
	ok := h.creds.checkCredential(ctx, dev, credential)
	if !ok {
		h.metrics.authFailures.WithLabelValues("ota").Inc()
	}
	return ok
}
