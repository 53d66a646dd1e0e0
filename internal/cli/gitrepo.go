package cli

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	gitopsv1alpha1 "github.com/cairn-platform/cairn/api/gitops/v1alpha1"
)

// severities are the API's Severity enum, lowest first.
var severities = []string{"Negligible", "Low", "Medium", "High", "Critical"}

// ignoredIDPattern is the API's IgnoredVulnerability.id pattern.
var ignoredIDPattern = regexp.MustCompile(`^(CVE-[0-9]{4}-[0-9]{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3}|[A-Z]+-[0-9A-Za-z-]+)$`)

func newGitRepoCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "gitrepo",
		Aliases: []string{"gr"},
		Short:   "Manage GitRepos",
		Long:    "Manage GitRepos: git repositories whose manifests Cairn keeps applied to the cluster.",
	}
	cmd.AddCommand(newGitRepoCreateCommand(f, streams))
	return cmd
}

type gitRepoCreateOptions struct {
	f       *factory
	streams genericiooptions.IOStreams
	out     objectOutput

	name            string
	url             string
	branch          string
	tag             string
	semver          string
	commit          string
	path            string
	interval        string
	timeout         string
	secretRef       string
	serviceAccount  string
	targetNamespace string
	prune           bool
	pruneSet        bool
	suspend         bool
	suspendSet      bool
	driftMode       string
	webhookSecret   string
	failOn          string
	pinDigests      bool
	ignore          []string

	// Set by validate.
	ref     map[string]any
	ignored []any
}

func newGitRepoCreateCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &gitRepoCreateOptions{f: f, streams: streams}
	cmd := &cobra.Command{
		Use:   "create NAME --url URL",
		Short: "Create or update a GitRepo",
		Long: `Create or update the GitRepo NAME in the current namespace.

The GitRepo is applied with server-side apply, field manager "cairn":
running the command again updates it in place, and flags left out return
their fields to the API defaults (default branch, path "./", interval 5m,
timeout 60s, prune true, driftMode Correct).

Flags are checked before the cluster is contacted; the API server then
enforces the remaining rules (URL syntax, interval of at least 10s, no
secretRef with a file:// URL, ...) and its messages are shown verbatim.

With --dry-run=client nothing is sent; add -o yaml to see the GitRepo.`,
		Example: `  # Follow the main branch of a public repository
  cairn gitrepo create podinfo --url https://github.com/stefanprodan/podinfo --branch master --path ./kustomize

  # The highest 1.x tag, with credentials, applied as a ServiceAccount
  cairn gitrepo create shop -n shop --url ssh://git@git.example.com/shop.git \
    --semver '>=1.0.0 <2.0.0' --secret-ref shop-git --service-account shop-deployer

  # Report drift without correcting it, block critical findings except one
  cairn gitrepo create shop --url https://git.example.com/shop.git --drift-mode detect \
    --fail-on critical --ignore 'CVE-2024-45337=ssh server code not used'

  # Print the GitRepo without creating it
  cairn gitrepo create shop --url https://git.example.com/shop.git --dry-run=client`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name = args[0]
			o.pruneSet = cmd.Flags().Changed("prune")
			o.suspendSet = cmd.Flags().Changed("suspend")
			if err := o.validate(cmd); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.url, "url", "", `Repository URL: https://, http://, ssh://, git://, file:// or scp-like "git@host:org/repo.git".`)
	fs.StringVar(&o.branch, "branch", "", "Branch to follow.")
	fs.StringVar(&o.tag, "tag", "", "Tag to check out.")
	fs.StringVar(&o.semver, "semver", "", `SemVer range such as "^1.2" or ">=1.0.0 <2.0.0": the highest matching tag.`)
	fs.StringVar(&o.commit, "commit", "", "Commit SHA to pin (40 or 64 lowercase hex characters).")
	fs.StringVar(&o.path, "path", "", `Directory in the repository holding the manifests (API default "./").`)
	fs.StringVar(&o.interval, "interval", "", `Time between pulls, e.g. "1m" (API default 5m, at least 10s).`)
	fs.StringVar(&o.timeout, "timeout", "", `Timeout of one fetch and apply, e.g. "2m" (API default 60s).`)
	fs.StringVar(&o.secretRef, "secret-ref", "", `Secret with the git credentials ("username"+"password" or "bearerToken"; "identity"+"known_hosts" for ssh).`)
	fs.StringVar(&o.serviceAccount, "service-account", "", "ServiceAccount impersonated to apply the manifests.")
	fs.StringVar(&o.targetNamespace, "target-namespace", "", "Namespace set on namespaced objects that have none.")
	fs.BoolVar(&o.prune, "prune", true, "Delete objects that were applied before and are gone from git; left to the API default (true) unless given.")
	fs.BoolVar(&o.suspend, "suspend", false, "Create the GitRepo suspended: nothing is pulled or applied.")
	fs.StringVar(&o.driftMode, "drift-mode", "", `"correct" (re-apply objects changed in the cluster, the API default) or "detect" (only report them).`)
	fs.StringVar(&o.webhookSecret, "webhook-secret", "", `Secret whose "token" key verifies push webhook deliveries.`)
	fs.StringVar(&o.failOn, "fail-on", "", "Block the apply on a scan finding of this severity or higher: critical, high, medium, low or negligible.")
	fs.BoolVar(&o.pinDigests, "pin-image-digests", false, "Apply each scanned image pinned to the digest that passed the scan (needs --fail-on or --ignore).")
	fs.StringArrayVar(&o.ignore, "ignore", nil, `Accepted vulnerability as "ID=REASON", e.g. "CVE-2024-45337=not reachable"; repeatable.`)
	o.out.addFlags(fs)
	if err := cmd.MarkFlagRequired("url"); err != nil {
		panic(err) // The flag is registered just above; failure is a programming error.
	}
	for flag, values := range map[string][]string{
		"drift-mode": {"correct", "detect"},
		"fail-on":    {"critical", "high", "medium", "low", "negligible"},
		"dry-run":    {dryRunNone, dryRunClient, dryRunServer},
		"output":     {"yaml", "json", "name"},
	} {
		if err := cmd.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)); err != nil {
			panic(err)
		}
	}
	return cmd
}

func (o *gitRepoCreateOptions) validate(cmd *cobra.Command) error {
	var errs []error

	var refFlags []string
	o.ref = nil
	for _, r := range []struct{ flag, field, value string }{
		{"branch", "branch", o.branch},
		{"tag", "tag", o.tag},
		{"semver", "semver", o.semver},
		{"commit", "commit", o.commit},
	} {
		if !cmd.Flags().Changed(r.flag) {
			continue
		}
		refFlags = append(refFlags, "--"+r.flag)
		if r.value == "" {
			errs = append(errs, fmt.Errorf("--%s must not be empty", r.flag))
			continue
		}
		o.ref = map[string]any{r.field: r.value}
	}
	if len(refFlags) > 1 {
		errs = append(errs, fmt.Errorf("only one of --branch, --tag, --semver or --commit can be given, got %s", strings.Join(refFlags, ", ")))
	}

	if o.url == "" {
		errs = append(errs, errors.New("--url must not be empty"))
	}
	for _, d := range []struct{ flag, value string }{{"interval", o.interval}, {"timeout", o.timeout}} {
		if d.value != "" && !durationPattern.MatchString(d.value) {
			errs = append(errs, fmt.Errorf(`invalid --%s %q: want a duration in h, m, s or ms such as "30s" or "1m30s"`, d.flag, d.value))
		}
	}

	switch strings.ToLower(o.driftMode) {
	case "":
	case "correct":
		o.driftMode = string(gitopsv1alpha1.DriftModeCorrect)
	case "detect":
		o.driftMode = string(gitopsv1alpha1.DriftModeDetect)
	default:
		errs = append(errs, fmt.Errorf("invalid --drift-mode %q: must be %q or %q", o.driftMode, "correct", "detect"))
	}

	if o.failOn != "" {
		found := false
		for _, s := range severities {
			if strings.EqualFold(o.failOn, s) {
				o.failOn, found = s, true
				break
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("invalid --fail-on %q: must be one of critical, high, medium, low or negligible", o.failOn))
		}
	}

	o.ignored = nil
	seen := map[string]bool{}
	for _, entry := range o.ignore {
		id, reason, ok := strings.Cut(entry, "=")
		id, reason = strings.TrimSpace(id), strings.TrimSpace(reason)
		switch {
		case !ok || reason == "":
			errs = append(errs, fmt.Errorf(`invalid --ignore %q: want "ID=REASON", e.g. "CVE-2024-45337=not reachable"`, entry))
		case !ignoredIDPattern.MatchString(id):
			errs = append(errs, fmt.Errorf("invalid --ignore %q: %q is not a vulnerability ID (CVE-YYYY-NNNN, GHSA-xxxx-xxxx-xxxx or PREFIX-ID)", entry, id))
		case seen[id]:
			errs = append(errs, fmt.Errorf("invalid --ignore %q: %s is ignored twice", entry, id))
		default:
			seen[id] = true
			o.ignored = append(o.ignored, map[string]any{"id": id, "reason": reason})
		}
	}

	if err := o.out.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (o *gitRepoCreateOptions) run(ctx context.Context) error {
	namespace, _, err := o.f.namespace()
	if err != nil {
		return err
	}
	return o.out.applyAll(ctx, o.f, o.streams, []*unstructured.Unstructured{o.object(namespace)})
}

// object builds the GitRepo from the validated flags. Flags not given are
// left out, so that server-side apply returns their fields to the API
// defaults.
func (o *gitRepoCreateOptions) object(namespace string) *unstructured.Unstructured {
	spec := map[string]any{"url": o.url}
	set := func(field, value string) {
		if value != "" {
			spec[field] = value
		}
	}
	if o.ref != nil {
		spec["ref"] = o.ref
	}
	set("path", o.path)
	set("interval", o.interval)
	set("timeout", o.timeout)
	if o.secretRef != "" {
		spec["secretRef"] = map[string]any{"name": o.secretRef}
	}
	set("serviceAccountName", o.serviceAccount)
	set("targetNamespace", o.targetNamespace)
	if o.pruneSet {
		spec["prune"] = o.prune
	}
	if o.suspendSet {
		spec["suspend"] = o.suspend
	}
	set("driftMode", o.driftMode)
	if o.webhookSecret != "" {
		spec["webhook"] = map[string]any{"secretRef": map[string]any{"name": o.webhookSecret}}
	}
	if o.failOn != "" || len(o.ignored) > 0 {
		policy := map[string]any{}
		if o.failOn != "" {
			policy["failOn"] = o.failOn
		}
		if len(o.ignored) > 0 {
			policy["ignore"] = o.ignored
		}
		spec["scanPolicy"] = policy
	}
	if o.pinDigests {
		spec["pinImageDigests"] = true
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gitopsv1alpha1.GroupVersion.String(),
		"kind":       "GitRepo",
		"metadata":   map[string]any{"name": o.name, "namespace": namespace},
		"spec":       spec,
	}}
}
