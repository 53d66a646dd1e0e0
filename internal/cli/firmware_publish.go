package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	ocitypes "github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"

	edgev1alpha1 "github.com/cairn-platform/cairn/api/edge/v1alpha1"
	"github.com/cairn-platform/cairn/dataplane/ota/tuf"
)

// Media types of a firmware image pushed as an OCI artifact: one layer
// holding the raw image, so the layer digest is the image's SHA-256.
const (
	firmwareLayerMediaType  = "application/vnd.cairn.firmware.layer.v1"
	firmwareConfigMediaType = "application/vnd.cairn.firmware.config.v1+json"
)

// maxConfigMapBytes is the API server's limit on a ConfigMap's data.
const maxConfigMapBytes = 1 << 20

const dryRunClient = "client"

// objectOutput holds the apply flags shared by publish and refresh.
type objectOutput struct {
	dryRun         string
	output         string
	forceConflicts bool
}

func (o *objectOutput) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.dryRun, "dry-run", dryRunNone, `Must be "none", "client" or "server". With "client", only print the objects that would be applied; with "server", the server processes the requests without persisting anything.`)
	fs.StringVarP(&o.output, "output", "o", "", `Output format: "yaml", "json" or "name" (the default prints kubectl-style status lines).`)
	fs.BoolVar(&o.forceConflicts, "force-conflicts", false, "Take ownership of fields that other field managers currently own.")
}

func (o *objectOutput) validate() error {
	switch o.dryRun {
	case dryRunNone, dryRunClient, dryRunServer:
	default:
		return fmt.Errorf("invalid --dry-run value %q: must be %q, %q or %q", o.dryRun, dryRunNone, dryRunClient, dryRunServer)
	}
	switch o.output {
	case "", "yaml", "json", "name":
	default:
		return fmt.Errorf("invalid --output %q: must be yaml, json or name", o.output)
	}
	return nil
}

// applyAll server-side applies objs in order (or, with --dry-run=client,
// only prints them) and prints each result.
func (o *objectOutput) applyAll(ctx context.Context, f *factory, streams genericiooptions.IOStreams, objs []*unstructured.Unstructured) error {
	var printer printers.ResourcePrinter
	switch o.output {
	case "yaml":
		printer = &printers.YAMLPrinter{}
	case "json":
		printer = &printers.JSONPrinter{}
	case "name":
		printer = &printers.NamePrinter{}
	default:
		op := "serverside-applied"
		switch o.dryRun {
		case dryRunClient:
			op += " (dry run)"
		case dryRunServer:
			op += " (server dry run)"
		}
		printer = &printers.NamePrinter{Operation: op}
	}
	if o.dryRun == dryRunClient {
		for _, obj := range objs {
			if err := printer.PrintObj(obj, streams.Out); err != nil {
				return err
			}
		}
		return nil
	}
	mapper, err := f.ToRESTMapper()
	if err != nil {
		return err
	}
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		if _, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			return fmt.Errorf("resolving %s: %w; ensure the Cairn CRDs are installed first", gvk.GroupKind(), err)
		}
	}
	client, err := f.dynamicClient()
	if err != nil {
		return err
	}
	ao := applyOptions{f: f, streams: streams, dryRun: dryRunNone, forceConflicts: o.forceConflicts}
	if o.dryRun == dryRunServer {
		ao.dryRun = dryRunServer
	}
	for _, obj := range objs {
		applied, err := ao.apply(ctx, client, mapper, obj, obj.GetNamespace(), false)
		if err != nil {
			return err
		}
		if err := printer.PrintObj(applied, streams.Out); err != nil {
			return err
		}
	}
	return nil
}

// repositoryConfigMap holds every metadata file of repo.
func repositoryConfigMap(repo *tuf.Repository, name, namespace string) (*unstructured.Unstructured, error) {
	files, err := repo.Files()
	if err != nil {
		return nil, err
	}
	data := map[string]any{}
	total := 0
	for file, b := range files {
		data[file] = string(b)
		total += len(file) + len(b)
	}
	if total > maxConfigMapBytes {
		return nil, fmt.Errorf("the repository's metadata is %d bytes, more than the %d bytes a ConfigMap holds; remove old targets (or rotate fewer roots)", total, maxConfigMapBytes)
	}
	return firmwareConfigMap(name, namespace, data), nil
}

func firmwareConfigMap(name, namespace string, data map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"data":       data,
	}}
}

// trustedKeysConfigMap maps the release key ID of each targets key of the
// repository's current root to its base64 public key, and pins the
// repository's first root for the controller.
func trustedKeysConfigMap(repo *tuf.Repository, name, namespace string) (*unstructured.Unstructured, error) {
	root, err := repoRoot(repo)
	if err != nil {
		return nil, err
	}
	data := map[string]any{}
	for _, id := range root.Roles[tuf.RoleTargets].KeyIDs {
		k, ok := root.Keys[id]
		if !ok {
			return nil, fmt.Errorf("%s lists targets key %s but not the key itself", tuf.RootFile, id)
		}
		b64, err := publicKeyBase64(k)
		if err != nil {
			return nil, err
		}
		data[releaseKeyID(id)] = b64
	}
	// The controller starts its TUF checks from this pinned root, not
	// from whatever the repository ConfigMap holds.
	files, err := repo.Files()
	if err != nil {
		return nil, err
	}
	data[edgev1alpha1.TrustedKeysPinnedRoot] = string(files[tuf.RootVersionFile(1)])
	return firmwareConfigMap(name, namespace, data), nil
}

type firmwarePublishOptions struct {
	objectOutput
	repoDir, target, url, oci, image, repoName string
	sbom, failOn                               string
	insecure                                   bool
	waves                                      []int
	wavePause, maxUnavailable, selector        string
	failureThreshold                           int
	paused, noAutoRollback                     bool
}

func newFirmwarePublishCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &firmwarePublishOptions{}
	cmd := &cobra.Command{
		Use:   "publish NAME --repo REPODIR --target PATH (--url URL | --oci REF --image IMAGE) [--sbom FILE [--fail-on SEVERITY]]",
		Short: "Publish a signed firmware release to the cluster as a Firmware rollout",
		Long: `Server-side apply (field manager "cairn"), in this order:

  ConfigMap REPOSITORY-NAME       every signed metadata file of the repository
  ConfigMap REPOSITORY-NAME-keys  the repository's targets keys (key ID -> base64
                                  public key), which the controller trusts for
                                  release signatures
  ConfigMap NAME-sbom             with --sbom: the SBOM (gzip), whose digest
                                  "cairn firmware sign --sbom" signed
  Firmware NAME                   the release signed by "cairn firmware sign"
                                  for target PATH, rolled out as the flags say;
                                  with --fail-on, no device is updated while
                                  the SBOM has findings of that severity

The image is downloaded by devices from --url, or from the OCI artifact
--oci: with --oci, IMAGE is pushed first as an artifact with a single
uncompressed layer (type ` + firmwareLayerMediaType + `), using the docker
credentials (docker login), and the Firmware pins the pushed digest. With
--dry-run, nothing is pushed; the digest is computed locally.`,
		Example: `  cairn firmware publish gw2-1.4.2 --repo repo/ --target acme-gw-2/1.4.2/gw2.img \
      --url https://firmware.example.com/gw2-1.4.2.img --waves 5,25,100 --wave-pause 2h

  cairn firmware publish gw2-1.4.2 --repo repo/ --target acme-gw-2/1.4.2/gw2.img \
      --oci registry.example.com/fw/gw2:1.4.2 --image gw2.img --selector site=lab

  # Review the objects without touching the cluster or the registry
  cairn firmware publish gw2-1.4.2 --repo repo/ --target acme-gw-2/1.4.2/gw2.img \
      --url https://firmware.example.com/gw2.img --dry-run=client -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), f, streams, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.repoDir, "repo", "", "Repository directory created by init.")
	fl.StringVar(&o.target, "target", "", "Target path of the release in the repository, as printed by sign.")
	fl.StringVar(&o.url, "url", "", "HTTP(S) URL devices download the image from.")
	fl.StringVar(&o.oci, "oci", "", "OCI reference (REGISTRY/REPOSITORY:TAG) to push the image to and download it from.")
	fl.StringVar(&o.image, "image", "", "The image file, pushed with --oci.")
	fl.BoolVar(&o.insecure, "insecure", false, "Allow a plain-HTTP registry for --oci.")
	fl.StringVar(&o.repoName, "repository-name", "firmware-repository", "Name of the repository ConfigMap; the trusted keys go to NAME-keys.")
	fl.IntSliceVar(&o.waves, "waves", []int{10, 50, 100}, "Rollout waves: cumulative percentages of the selected devices, ascending, ending at 100.")
	fl.StringVar(&o.wavePause, "wave-pause", "", `Pause after each successful wave but the last ("1h", "30m").`)
	fl.StringVar(&o.maxUnavailable, "max-unavailable", "10%", "Devices of a wave updating at once: a number or a percentage.")
	fl.IntVar(&o.failureThreshold, "failure-threshold", 5, "Percentage of failed devices in a wave that halts the rollout.")
	fl.StringVarP(&o.selector, "selector", "l", "", "Label selector of the EdgeDevices to update (k=v,k2 in (a,b)); default every compatible device.")
	fl.BoolVar(&o.paused, "paused", false, "Create the rollout paused.")
	fl.BoolVar(&o.noAutoRollback, "no-auto-rollback", false, "Do not roll failed devices back automatically.")
	fl.StringVar(&o.sbom, "sbom", "", "SBOM of the image, as signed with sign --sbom; stored in ConfigMap NAME-sbom.")
	fl.StringVar(&o.failOn, "fail-on", "", "With --sbom: hold the rollout while the SBOM has findings of this severity or higher (negligible, low, medium, high, critical).")
	o.addFlags(fl)
	_ = cmd.MarkFlagDirname("repo")
	_ = cmd.MarkFlagFilename("image")
	_ = cmd.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]cobra.Completion{dryRunNone, dryRunClient, dryRunServer}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]cobra.Completion{"yaml", "json", "name"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func (o *firmwarePublishOptions) validate() error {
	switch {
	case o.repoDir == "":
		return errors.New(`required flag "repo" not set`)
	case o.target == "":
		return errors.New(`required flag "target" not set`)
	case (o.url == "") == (o.oci == ""):
		return errors.New("specify exactly one of --url or --oci")
	case o.oci != "" && o.image == "":
		return errors.New("--oci needs --image, the image file to push")
	case o.oci == "" && o.image != "":
		return errors.New("--image is pushed with --oci; with --url, upload the image yourself")
	case o.repoName == "":
		return errors.New("--repository-name must not be empty")
	case o.failOn != "" && o.sbom == "":
		return errors.New("--fail-on needs --sbom: a firmware image is scanned through its SBOM")
	case o.failOn != "" && !slices.Contains([]string{"negligible", "low", "medium", "high", "critical"}, strings.ToLower(o.failOn)):
		return fmt.Errorf("invalid --fail-on %q: want negligible, low, medium, high or critical", o.failOn)
	case o.failureThreshold < 0 || o.failureThreshold > 100:
		return fmt.Errorf("invalid --failure-threshold %d: must be between 0 and 100", o.failureThreshold)
	case o.wavePause != "" && !durationPattern.MatchString(o.wavePause):
		return fmt.Errorf("invalid --wave-pause %q: use a duration such as 1h, 30m or 1h30m", o.wavePause)
	}
	if len(o.waves) == 0 || len(o.waves) > 10 {
		return fmt.Errorf("--waves needs 1 to 10 percentages, got %d", len(o.waves))
	}
	for i, w := range o.waves {
		if w < 1 || w > 100 || (i > 0 && w <= o.waves[i-1]) {
			return fmt.Errorf("invalid --waves %v: percentages must be between 1 and 100 and strictly ascending", o.waves)
		}
	}
	if o.waves[len(o.waves)-1] != 100 {
		return fmt.Errorf("invalid --waves %v: the last wave must reach 100", o.waves)
	}
	if o.url != "" {
		u, err := url.Parse(o.url)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" {
			return fmt.Errorf("invalid --url %q: must be an absolute http(s) URL", o.url)
		}
	}
	return o.objectOutput.validate()
}

func (o *firmwarePublishOptions) run(ctx context.Context, f *factory, streams genericiooptions.IOStreams, fwName string) error {
	if err := o.validate(); err != nil {
		return err
	}
	rollout, err := o.rollout()
	if err != nil {
		return err
	}
	namespace, _, err := f.namespace()
	if err != nil {
		return err
	}
	repo, err := openInitializedRepository(o.repoDir)
	if err != nil {
		return err
	}
	rel, err := readRelease(o.repoDir, o.target)
	if err != nil {
		return err
	}
	tf, ok := repo.Targets()[o.target]
	if !ok {
		return fmt.Errorf("target %s is not in the repository %s; sign the image again", o.target, o.repoDir)
	}
	if err := tf.Check(rel.Size, rel.SHA256); err != nil {
		return fmt.Errorf("the release file of %s does not match the repository (was the target signed again?): %w", o.target, err)
	}
	repoCM, err := repositoryConfigMap(repo, o.repoName, namespace)
	if err != nil {
		return err
	}
	keysCM, err := trustedKeysConfigMap(repo, o.repoName+"-keys", namespace)
	if err != nil {
		return err
	}
	trusted := keysCM.Object["data"].(map[string]any)
	var sigs []any
	for _, s := range rel.Signatures {
		if _, ok := trusted[s.KeyID]; !ok {
			return fmt.Errorf("the release %s is signed by key %s, which the repository's root no longer trusts; sign the image again", o.target, s.KeyID)
		}
		sigs = append(sigs, map[string]any{"keyID": s.KeyID, "value": s.Value})
	}
	threshold := max(rel.Threshold, 1)
	if threshold > len(sigs) {
		return fmt.Errorf("the release %s has %d signatures, fewer than its threshold %d", o.target, len(sigs), threshold)
	}

	artifact := map[string]any{"sha256": rel.SHA256, "size": rel.Size}
	if o.url != "" {
		artifact["url"] = o.url
	} else {
		image, err := os.ReadFile(o.image)
		if err != nil {
			return fmt.Errorf("reading image: %w", err)
		}
		pinned, err := pushFirmwareImage(ctx, o.oci, image, rel.SHA256, o.insecure, o.dryRun == dryRunNone)
		if err != nil {
			return err
		}
		artifact["oci"] = pinned
	}
	models := make([]any, 0, len(rel.Models))
	for _, m := range rel.Models {
		models = append(models, m)
	}
	fw := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "edge.cairn.dev/v1alpha1",
		"kind":       "Firmware",
		"metadata":   map[string]any{"name": fwName, "namespace": namespace},
		"spec": map[string]any{
			"version":          rel.Version,
			"compatibleModels": models,
			"artifact":         artifact,
			"signatures": map[string]any{
				"trustedKeys": map[string]any{"name": keysCM.GetName()},
				"threshold":   int64(threshold),
				"signatures":  sigs,
			},
			"metadata": map[string]any{
				"repository": map[string]any{"name": repoCM.GetName()},
				"target":     o.target,
			},
			"rollout": rollout,
		},
	}}
	objs := []*unstructured.Unstructured{repoCM, keysCM}
	if o.sbom != "" {
		sbomCM, err := o.sbomConfigMap(tf, fwName+"-sbom", namespace)
		if err != nil {
			return err
		}
		spec := fw.Object["spec"].(map[string]any)
		spec["sbom"] = map[string]any{"name": sbomCM.GetName(), "key": sbomKey}
		if o.failOn != "" {
			spec["scanPolicy"] = map[string]any{"failOn": strings.ToUpper(o.failOn[:1]) + strings.ToLower(o.failOn[1:])}
		}
		objs = append(objs, sbomCM)
	}
	return o.applyAll(ctx, f, streams, append(objs, fw))
}

func (o *firmwarePublishOptions) rollout() (map[string]any, error) {
	waves := make([]any, 0, len(o.waves))
	for i, p := range o.waves {
		w := map[string]any{"percent": int64(p)}
		if o.wavePause != "" && i < len(o.waves)-1 {
			w["pause"] = o.wavePause
		}
		waves = append(waves, w)
	}
	r := map[string]any{
		"waves":            waves,
		"failureThreshold": int64(o.failureThreshold),
		"autoRollback":     !o.noAutoRollback,
	}
	if o.paused {
		r["paused"] = true
	}
	mu := intstr.Parse(o.maxUnavailable)
	switch {
	case mu.Type == intstr.Int && mu.IntVal >= 1:
		r["maxUnavailable"] = int64(mu.IntVal)
	case mu.Type == intstr.String && regexp.MustCompile(`^([1-9][0-9]?|100)%$`).MatchString(mu.StrVal):
		r["maxUnavailable"] = mu.StrVal
	default:
		return nil, fmt.Errorf("invalid --max-unavailable %q: must be a positive number or a percentage between 1%% and 100%%", o.maxUnavailable)
	}
	if o.selector != "" {
		sel, err := metav1.ParseToLabelSelector(o.selector)
		if err != nil {
			return nil, fmt.Errorf("invalid --selector: %w", err)
		}
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(sel)
		if err != nil {
			return nil, err
		}
		r["selector"] = u
	}
	return r, nil
}

// firmwareArtifact builds the OCI artifact of a firmware image: a single
// uncompressed layer holding the image as is.
func firmwareArtifact(image []byte, sha256hex string) (v1.Image, error) {
	layer := static.NewLayer(image, firmwareLayerMediaType)
	d, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	if d.Algorithm != "sha256" || d.Hex != sha256hex {
		return nil, fmt.Errorf("the image's digest %s differs from the signed sha256:%s; is --image the signed file?", d, sha256hex)
	}
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{})
	if err != nil {
		return nil, fmt.Errorf("building the artifact config: %w", err)
	}
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, fmt.Errorf("adding the image layer: %w", err)
	}
	return mutate.ConfigMediaType(mutate.MediaType(img, ocitypes.OCIManifestSchema1), firmwareConfigMediaType), nil
}

// pushFirmwareImage pushes image to ref (if push) and returns ref pinned by
// the artifact's manifest digest.
func pushFirmwareImage(ctx context.Context, ref string, image []byte, sha256hex string, insecure, push bool) (string, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return "", fmt.Errorf("invalid --oci reference %q: %w", ref, err)
	}
	img, err := firmwareArtifact(image, sha256hex)
	if err != nil {
		return "", err
	}
	if push {
		auth, err := authn.DefaultKeychain.Resolve(r.Context())
		if err != nil {
			return "", fmt.Errorf("reading registry credentials: %w", err)
		}
		if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuth(auth), remote.WithUserAgent("cairn")); err != nil {
			return "", fmt.Errorf("pushing %s: %w", r, err)
		}
	}
	d, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("digesting the artifact: %w", err)
	}
	return r.Context().Digest(d.String()).String(), nil
}

func newFirmwareRefreshCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	var repoDir, keyDir, repoName string
	var doApply bool
	var out objectOutput
	expiry := tuf.DefaultExpiry()
	cmd := &cobra.Command{
		Use:   "refresh --repo REPODIR --keys KEYDIR [--apply]",
		Short: "Re-sign timestamp.json before devices see it expire",
		Long: `Sign a new version of the repository's timestamp.json with the timestamp
keys in KEYDIR, extending its validity (--expires-timestamp, default 1 day)
without other changes. Devices refuse an expired timestamp, so run this
regularly, well within the expiry (e.g. every few hours from a CronJob).
With --apply, the repository ConfigMap is applied again too.`,
		Example: `  cairn firmware refresh --repo repo/ --keys keys/ --apply -n fleet`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case repoDir == "":
				return errors.New(`required flag "repo" not set`)
			case keyDir == "":
				return errors.New(`required flag "keys" not set`)
			case expiry.Timestamp <= 0:
				return fmt.Errorf("invalid --expires-timestamp %s: must be positive", expiry.Timestamp)
			}
			if err := out.validate(); err != nil {
				return err
			}
			repo, err := openInitializedRepository(repoDir)
			if err != nil {
				return err
			}
			repo.Expiry = expiry
			keys, err := readRoleKeys(keyDir, tuf.RoleTimestamp)
			if err != nil {
				return err
			}
			if err := repo.RefreshTimestamp(time.Now(), keys...); err != nil {
				return err
			}
			version, expires, err := timestampVersion(repo)
			if err != nil {
				return err
			}
			if !doApply {
				fmt.Fprintf(streams.Out, "signed timestamp.json version %d, expires %s\n", version, expires.UTC().Format(time.RFC3339))
				return nil
			}
			fmt.Fprintf(streams.ErrOut, "signed timestamp.json version %d, expires %s\n", version, expires.UTC().Format(time.RFC3339))
			namespace, _, err := f.namespace()
			if err != nil {
				return err
			}
			cm, err := repositoryConfigMap(repo, repoName, namespace)
			if err != nil {
				return err
			}
			return out.applyAll(cmd.Context(), f, streams, []*unstructured.Unstructured{cm})
		},
	}
	cmd.Flags().StringVar(&repoDir, "repo", "", "Repository directory created by init.")
	cmd.Flags().StringVar(&keyDir, "keys", "", "Directory holding the timestamp key files.")
	cmd.Flags().StringVar(&repoName, "repository-name", "firmware-repository", "Name of the repository ConfigMap.")
	cmd.Flags().BoolVar(&doApply, "apply", false, "Also apply the repository ConfigMap.")
	addExpiryFlags(cmd.Flags(), &expiry, tuf.RoleTimestamp)
	out.addFlags(cmd.Flags())
	_ = cmd.MarkFlagDirname("repo")
	_ = cmd.MarkFlagDirname("keys")
	return cmd
}

// timestampVersion reads the version and expiry of the published timestamp.json.
func timestampVersion(repo *tuf.Repository) (int64, time.Time, error) {
	files, err := repo.Files()
	if err != nil {
		return 0, time.Time{}, err
	}
	var env struct {
		Signed tuf.Timestamp `json:"signed"`
	}
	if err := json.Unmarshal(files[tuf.TimestampFile], &env); err != nil {
		return 0, time.Time{}, fmt.Errorf("reading %s: %w", tuf.TimestampFile, err)
	}
	return env.Signed.Version, env.Signed.Expires, nil
}

// sbomKey is the key of the SBOM ConfigMap: gzip keeps SBOMs of whole
// root filesystems under the 1 MiB a ConfigMap holds.
const sbomKey = "sbom.json.gz"

// sbomConfigMap stores the SBOM gzip-compressed, after checking it is the
// one signed into the target.
func (o *firmwarePublishOptions) sbomConfigMap(tf tuf.TargetFile, name, namespace string) (*unstructured.Unstructured, error) {
	signed, err := tf.Firmware()
	if err != nil || signed.SBOM == nil {
		return nil, fmt.Errorf("target %s was signed without --sbom; sign it again with cairn firmware sign --sbom %s", o.target, o.sbom)
	}
	got, err := sbomDigest(o.sbom)
	if err != nil {
		return nil, err
	}
	if *got != *signed.SBOM {
		return nil, fmt.Errorf("--sbom %s (sha256 %s) is not the SBOM signed into target %s (sha256 %s)", o.sbom, got.SHA256, o.target, signed.SBOM.SHA256)
	}
	doc, err := os.ReadFile(o.sbom)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(doc); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if buf.Len() > maxConfigMapBytes {
		return nil, fmt.Errorf("the SBOM is %d bytes compressed, more than the %d bytes a ConfigMap holds", buf.Len(), maxConfigMapBytes)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"binaryData": map[string]any{sbomKey: base64.StdEncoding.EncodeToString(buf.Bytes())},
	}}, nil
}
