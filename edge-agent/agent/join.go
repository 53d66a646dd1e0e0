package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/nacl/box"

	"github.com/cairn-platform/cairn/edge-agent/protocol"
)

// joinTimeout bounds one join attempt; a fleet joining at once keeps the
// hub (and its API server) busy for a while.
const joinTimeout = 2 * time.Minute

// ErrJoinRefused means the hub did not accept the bootstrap token.
var ErrJoinRefused = errors.New("the hub refused the bootstrap token")

// join trades the bootstrap token for the device credential.
func join(ctx context.Context, cfg Config) (string, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, joinTimeout, errors.New("no answer from the hub"))
	defer cancel()
	dev := cfg.Device
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	answers := make(chan protocol.JoinResponse, 1)
	failed := make(chan error, 1)
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generating the join key: %w", err)
	}
	request, err := json.Marshal(protocol.JoinRequest{AgentVersion: cfg.Version, Token: cfg.BootstrapToken, PublicKey: pub[:]})
	if err != nil {
		return "", err
	}
	username, password := protocol.JoinUsername, dev.String()+":"+cfg.BootstrapToken
	if cfg.JoinPassword != "" {
		// An external broker's shared join account.
		password = cfg.JoinPassword
	}
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{cfg.Hub},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              autopaho.NewConstantBackoff(time.Second),
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               username,
		ConnectPassword:               []byte(password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			go func() {
				if _, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: dev.JoinResponseTopic(), QoS: 1}}}); err != nil {
					failed <- fmt.Errorf("subscribing to the join answer: %w", err)
					return
				}
				if _, err := cm.Publish(ctx, &paho.Publish{Topic: dev.JoinRequestTopic(), QoS: 1, Payload: request}); err != nil {
					failed <- fmt.Errorf("sending the join request: %w", err)
				}
			}()
		},
		OnConnectError: func(err error) {
			var ce *autopaho.ConnackError
			if errors.As(err, &ce) && (ce.ReasonCode == 0x86 || ce.ReasonCode == 0x87) {
				select {
				case failed <- ErrJoinRefused:
				default:
				}
			}
		},
		ClientConfig: paho.ClientConfig{
			ClientID: "join-" + dev.Namespace + "-" + dev.Name + "-" + hex.EncodeToString(suffix),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					var resp protocol.JoinResponse
					if pr.Packet.Topic != dev.JoinResponseTopic() || json.Unmarshal(pr.Packet.Payload, &resp) != nil {
						return true, nil
					}
					select {
					case answers <- resp:
					default:
					}
					return true, nil
				},
			},
		},
	})
	if err != nil {
		return "", fmt.Errorf("connecting to join: %w", err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer dcancel()
		_ = cm.Disconnect(dctx)
	}()
	select {
	case resp := <-answers:
		if resp.Error != "" {
			return "", fmt.Errorf("%w: %s", ErrJoinRefused, resp.Error)
		}
		credential, ok := box.OpenAnonymous(nil, resp.SealedCredential, pub, priv)
		if !ok || len(credential) == 0 {
			return "", errors.New("joining: the hub's answer is not sealed to this agent's key")
		}
		return string(credential), nil
	case err := <-failed:
		return "", err
	case <-ctx.Done():
		return "", fmt.Errorf("joining %s: %w", cfg.Hub.Redacted(), context.Cause(ctx))
	}
}
