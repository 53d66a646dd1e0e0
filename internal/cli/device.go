package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

var (
	edgeDeviceKind = schema.GroupKind{Group: "edge.cairn.dev", Kind: "EdgeDevice"}
	secretsGVR     = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

func newDeviceCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "device",
		Short: "Register and revoke edge devices",
	}
	cmd.AddCommand(newDeviceRegisterCommand(f, streams), newDeviceRevokeCommand(f, streams, false), newDeviceRevokeCommand(f, streams, true))
	return cmd
}

func newDeviceRegisterCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	var model, arch, hub string
	var timeout time.Duration
	o := applyOptions{f: f, streams: streams, dryRun: dryRunNone}
	cmd := &cobra.Command{
		Use:   "register NAME --model MODEL",
		Short: "Create an EdgeDevice and print the edge-agent command that joins it",
		Long: `Create (server-side apply) the EdgeDevice NAME, wait for the controller to
generate its bootstrap token, and print the command to run on the device.
The token is shown once here; it stays in the Secret NAME-bootstrap until
the device is revoked.`,
		Example: `  cairn device register gw-17 --model acme-gw-2 --hub mqtt://edge.example.com:1883`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			name := args[0]
			if model == "" {
				return errors.New(`required flag "model" not set`)
			}
			namespace, _, err := f.namespace()
			if err != nil {
				return err
			}
			mapper, err := f.ToRESTMapper()
			if err != nil {
				return err
			}
			client, err := f.dynamicClient()
			if err != nil {
				return err
			}
			if _, err := mapper.RESTMapping(edgeDeviceKind, "v1alpha1"); err != nil {
				return fmt.Errorf("resolving %s: %w; ensure the Cairn CRDs are installed first", edgeDeviceKind, err)
			}
			hardware := map[string]any{"model": model}
			if arch != "" {
				hardware["arch"] = arch
			}
			device := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "edge.cairn.dev/v1alpha1",
				"kind":       "EdgeDevice",
				"metadata":   map[string]any{"name": name, "namespace": namespace},
				"spec":       map[string]any{"hardware": hardware},
			}}
			if _, err := o.apply(ctx, client, mapper, device, namespace, false); err != nil {
				return err
			}
			var token string
			err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
				s, err := client.Resource(secretsGVR).Namespace(namespace).Get(ctx, name+"-bootstrap", metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					return false, nil
				}
				if err != nil {
					return false, err
				}
				enc, _, _ := unstructured.NestedString(s.Object, "data", "token")
				b, err := base64.StdEncoding.DecodeString(enc)
				if err != nil || len(b) == 0 {
					return false, nil
				}
				token = string(b)
				return true, nil
			})
			if err != nil {
				return fmt.Errorf("waiting for the bootstrap token Secret %s-bootstrap (is the Cairn manager running?): %w", name, err)
			}
			_, err = fmt.Fprintf(streams.Out, "edgedevice.edge.cairn.dev/%s registered in namespace %s. On the device, run:\n\n  edge-agent --hub %s --device %s/%s --token %s\n",
				name, namespace, hub, namespace, name, token)
			return err
		},
	}
	cmd.Flags().StringVar(&model, "model", "", "Hardware model of the device.")
	cmd.Flags().StringVar(&arch, "arch", "", "CPU architecture (amd64, arm64, arm, riscv64; API default arm64).")
	cmd.Flags().StringVar(&hub, "hub", "mqtt://cairn-edge-hub.cairn-system.svc:1883", "Edge hub URL the device reaches, printed in the join command.")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "How long to wait for the bootstrap token.")
	return cmd
}

// newDeviceRevokeCommand builds "revoke" (the device is disconnected and
// cannot join again until a new token is issued) and "rotate-token" (a new
// bootstrap token; the device's current credential keeps working).
func newDeviceRevokeCommand(f *factory, streams genericiooptions.IOStreams, rotateOnly bool) *cobra.Command {
	use, short := "revoke NAME", "Disconnect a device and invalidate its credential and bootstrap token"
	if rotateOnly {
		use, short = "rotate-token NAME", "Replace a device's bootstrap token (its current credential keeps working)"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			namespace, _, err := f.namespace()
			if err != nil {
				return err
			}
			client, err := f.dynamicClient()
			if err != nil {
				return err
			}
			secrets := []string{args[0] + "-bootstrap"}
			if !rotateOnly {
				secrets = append(secrets, args[0]+"-credentials")
			}
			for _, s := range secrets {
				err := client.Resource(secretsGVR).Namespace(namespace).Delete(cmd.Context(), s, metav1.DeleteOptions{})
				if err != nil && !apierrors.IsNotFound(err) {
					return fmt.Errorf("deleting Secret %s: %w", s, err)
				}
				fmt.Fprintf(streams.Out, "secret/%s deleted\n", s)
			}
			if rotateOnly {
				fmt.Fprintf(streams.Out, "the controller issues a new bootstrap token in Secret %s-bootstrap\n", args[0])
			} else {
				fmt.Fprintf(streams.Out, "edgedevice/%s revoked: the hub disconnects it; run `cairn device register %s` to let it join again\n", args[0], args[0])
			}
			return nil
		},
	}
}
