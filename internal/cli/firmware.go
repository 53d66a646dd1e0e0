package cli

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/cairn-platform/cairn/dataplane/ota/tuf"
	"github.com/cairn-platform/cairn/internal/signing"
)

// firmwareRoles are the TUF top-level roles, in the order keys are generated.
var firmwareRoles = []string{tuf.RoleRoot, tuf.RoleTargets, tuf.RoleSnapshot, tuf.RoleTimestamp}

// releaseKeyIDLen is how many hex digits of a TUF key ID name the key in a
// Firmware's spec.signatures and the trusted-keys ConfigMap: the API limits
// keyID to 63 characters, a full TUF key ID has 64. The prefix stays
// recognizable next to the IDs keygen prints.
const releaseKeyIDLen = 16

// releaseKeyID is the ID a targets key signs releases under.
func releaseKeyID(tufKeyID string) string { return tufKeyID[:min(len(tufKeyID), releaseKeyIDLen)] }

func newFirmwareCommand(f *factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "firmware",
		Short: "Sign and publish firmware for over-the-air updates",
		Long: `Sign and publish firmware for over-the-air updates.

A release goes through a TUF repository kept in a local directory: generate
the role keys once (keygen), create the repository (init), add and sign each
image (sign), then publish it to the cluster (publish): the repository's
signed metadata and the trusted release keys as ConfigMaps, and a Firmware
that rolls the image out. Re-sign timestamp.json before it expires (refresh,
daily with the default expiry) and replace keys with rotate-root.

Private keys are read only from key files and never printed.`,
		Example: `  cairn firmware keygen keys/
  cairn firmware init repo/ --keys keys/
  cairn firmware sign gw2-1.4.2.img --repo repo/ --keys keys/ --version 1.4.2 --model acme-gw-2
  cairn firmware publish gw2-1.4.2 --repo repo/ --target acme-gw-2/1.4.2/gw2-1.4.2.img \
      --oci registry.example.com/fw/gw2:1.4.2 --image gw2-1.4.2.img`,
	}
	cmd.AddCommand(
		newFirmwareKeygenCommand(streams),
		newFirmwareInitCommand(streams),
		newFirmwareSignCommand(streams),
		newFirmwarePublishCommand(f, streams),
		newFirmwareRefreshCommand(f, streams),
		newFirmwareRotateRootCommand(streams),
	)
	return cmd
}

func newFirmwareKeygenCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var role, keyName string
	cmd := &cobra.Command{
		Use:   "keygen KEYDIR",
		Short: "Generate the ed25519 signing keys of a firmware repository",
		Long: `Generate one ed25519 key per TUF role: KEYDIR/root.key, targets.key,
snapshot.key and timestamp.key (mode 0600). With --role, generate one more key
for that role instead, KEYDIR/ROLE-NAME.key, for thresholds above 1 or for key
rotation; init, sign and rotate-root use every KEYDIR/ROLE.key and
KEYDIR/ROLE-*.key. Existing key files are never overwritten.

Keep the root key offline: it is needed only for init and rotate-root.`,
		Example: `  cairn firmware keygen keys/
  # A second targets key, for --targets-threshold 2
  cairn firmware keygen keys/ --role targets --name targets-2`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			dir := args[0]
			var files []string
			var keys []*tuf.PrivateKey
			switch {
			case role == "" && keyName != "":
				return errors.New("--name needs --role")
			case role == "":
				for _, r := range firmwareRoles {
					files = append(files, filepath.Join(dir, r+".key"))
				}
			default:
				if !slices.Contains(firmwareRoles, role) {
					return fmt.Errorf("invalid --role %q: must be one of %s", role, strings.Join(firmwareRoles, ", "))
				}
				if keyName == "" {
					k, err := tuf.GenerateKey()
					if err != nil {
						return err
					}
					keyName = role + "-" + k.ID()[:8]
					keys = append(keys, k)
				}
				keyName = strings.TrimSuffix(keyName, ".key")
				if !strings.HasPrefix(keyName, role+"-") || strings.ContainsAny(keyName, `/\`) {
					return fmt.Errorf("invalid --name %q: it must start with %q (and contain no /) so that init, sign and rotate-root pick it up as a %s key", keyName, role+"-", role)
				}
				files = append(files, filepath.Join(dir, keyName+".key"))
			}
			for len(keys) < len(files) {
				k, err := tuf.GenerateKey()
				if err != nil {
					return err
				}
				keys = append(keys, k)
			}
			// Check all files first so that a refusal leaves no partial set.
			for _, file := range files {
				if _, err := os.Lstat(file); err == nil {
					return fmt.Errorf("%s already exists; refusing to overwrite a signing key", file)
				}
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("creating key directory: %w", err)
			}
			for i, file := range files {
				k := keys[i]
				if err := tuf.WriteKeyFile(file, k); err != nil {
					if errors.Is(err, fs.ErrExist) {
						return fmt.Errorf("%s already exists; refusing to overwrite a signing key", file)
					}
					return err
				}
				fmt.Fprintf(streams.Out, "%s\t%s\n", file, k.ID())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", "", "Generate one additional key for this role (root, targets, snapshot or timestamp).")
	cmd.Flags().StringVar(&keyName, "name", "", "File name (without .key) of the additional key; must start with ROLE-. Default ROLE-<first 8 digits of its key ID>.")
	_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(firmwareRoles, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// roleKeyFiles returns KEYDIR/ROLE.key and the KEYDIR/ROLE-*.key files.
func roleKeyFiles(dir, role string) ([]string, error) {
	main := filepath.Join(dir, role+".key")
	if _, err := os.Stat(main); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, derr := os.Stat(dir); errors.Is(derr, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s: no such directory; run cairn firmware keygen %s first", dir, dir)
			}
			return nil, fmt.Errorf("%s: no such file; run cairn firmware keygen %s first", main, dir)
		}
		return nil, err
	}
	extra, err := filepath.Glob(filepath.Join(dir, role+"-*.key"))
	if err != nil {
		return nil, err
	}
	slices.Sort(extra)
	return append([]string{main}, extra...), nil
}

// readRoleKeys reads every key file of role in dir.
func readRoleKeys(dir, role string) ([]*tuf.PrivateKey, error) {
	files, err := roleKeyFiles(dir, role)
	if err != nil {
		return nil, err
	}
	keys := make([]*tuf.PrivateKey, 0, len(files))
	for _, file := range files {
		k, err := tuf.ReadKeyFile(file)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// readSigners reads the keys of the given roles from dir.
func readSigners(dir string, roles ...string) (tuf.Signers, error) {
	var s tuf.Signers
	for _, role := range roles {
		keys, err := readRoleKeys(dir, role)
		if err != nil {
			return tuf.Signers{}, err
		}
		switch role {
		case tuf.RoleRoot:
			s.Root = keys
		case tuf.RoleTargets:
			s.Targets = keys
		case tuf.RoleSnapshot:
			s.Snapshot = keys
		case tuf.RoleTimestamp:
			s.Timestamp = keys
		}
	}
	return s, nil
}

// thresholds are the --ROLE-threshold flags of init and rotate-root.
type thresholds struct{ root, targets, snapshot, timestamp int }

func (t *thresholds) addFlags(fs *pflag.FlagSet) {
	fs.IntVar(&t.root, "root-threshold", 1, "How many root keys must sign root metadata.")
	fs.IntVar(&t.targets, "targets-threshold", 1, "How many targets keys must sign targets metadata (and each release).")
	fs.IntVar(&t.snapshot, "snapshot-threshold", 1, "How many snapshot keys must sign snapshot metadata.")
	fs.IntVar(&t.timestamp, "timestamp-threshold", 1, "How many timestamp keys must sign timestamp metadata.")
}

// rootConfig lists the public keys of s with the thresholds.
func (t *thresholds) rootConfig(s tuf.Signers) tuf.RootConfig {
	role := func(keys []*tuf.PrivateKey, threshold int) tuf.RoleKeys {
		rk := tuf.RoleKeys{Threshold: threshold}
		for _, k := range keys {
			rk.Keys = append(rk.Keys, k.Public())
		}
		return rk
	}
	return tuf.RootConfig{
		Root:      role(s.Root, t.root),
		Targets:   role(s.Targets, t.targets),
		Snapshot:  role(s.Snapshot, t.snapshot),
		Timestamp: role(s.Timestamp, t.timestamp),
	}
}

// addExpiryFlags registers --expires-ROLE for the given roles.
func addExpiryFlags(fs *pflag.FlagSet, e *tuf.Expiry, roles ...string) {
	for _, role := range roles {
		var p *time.Duration
		switch role {
		case tuf.RoleRoot:
			p = &e.Root
		case tuf.RoleTargets:
			p = &e.Targets
		case tuf.RoleSnapshot:
			p = &e.Snapshot
		case tuf.RoleTimestamp:
			p = &e.Timestamp
		}
		fs.DurationVar(p, "expires-"+role, *p, fmt.Sprintf("How long newly signed %s metadata stays valid.", role))
	}
}

func checkExpiry(e tuf.Expiry) error {
	for role, d := range map[string]time.Duration{tuf.RoleRoot: e.Root, tuf.RoleTargets: e.Targets, tuf.RoleSnapshot: e.Snapshot, tuf.RoleTimestamp: e.Timestamp} {
		if d <= 0 {
			return fmt.Errorf("invalid --expires-%s %s: must be positive", role, d)
		}
	}
	return nil
}

// openInitializedRepository opens dir, which init must have created.
func openInitializedRepository(dir string) (*tuf.Repository, error) {
	if _, err := os.Stat(filepath.Join(dir, tuf.RootFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a firmware repository (no %s); run cairn firmware init %s --keys KEYDIR first", dir, tuf.RootFile, dir)
		}
		return nil, err
	}
	return tuf.OpenRepository(dir)
}

func newFirmwareInitCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var keyDir string
	var th thresholds
	expiry := tuf.DefaultExpiry()
	cmd := &cobra.Command{
		Use:   "init REPODIR --keys KEYDIR",
		Short: "Create a signed firmware repository (TUF metadata) in a directory",
		Long: `Create version 1 of the repository's root.json, and empty targets, snapshot
and timestamp metadata, in REPODIR. Each role ROLE trusts the keys
KEYDIR/ROLE.key and KEYDIR/ROLE-*.key, of which --ROLE-threshold must sign.`,
		Example: `  cairn firmware init repo/ --keys keys/
  cairn firmware init repo/ --keys keys/ --targets-threshold 2 --expires-timestamp 48h`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if keyDir == "" {
				return errors.New(`required flag "keys" not set`)
			}
			if err := checkExpiry(expiry); err != nil {
				return err
			}
			signers, err := readSigners(keyDir, firmwareRoles...)
			if err != nil {
				return err
			}
			repo, err := tuf.OpenRepository(args[0])
			if err != nil {
				return err
			}
			repo.Expiry = expiry
			if err := repo.Init(th.rootConfig(signers), signers, time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(streams.Out, "initialized firmware repository %s\n", args[0])
			for _, r := range []struct {
				role      string
				keys      []*tuf.PrivateKey
				threshold int
			}{{tuf.RoleRoot, signers.Root, th.root}, {tuf.RoleTargets, signers.Targets, th.targets}, {tuf.RoleSnapshot, signers.Snapshot, th.snapshot}, {tuf.RoleTimestamp, signers.Timestamp, th.timestamp}} {
				fmt.Fprintf(streams.Out, "  %-9s threshold %d of %s\n", r.role, r.threshold, keyIDs(r.keys))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyDir, "keys", "", "Directory holding the key files written by keygen.")
	th.addFlags(cmd.Flags())
	addExpiryFlags(cmd.Flags(), &expiry, firmwareRoles...)
	_ = cmd.MarkFlagDirname("keys")
	return cmd
}

// dedupe drops repeated strings, keeping the first of each.
func dedupe(list []string) []string {
	var out []string
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func keyIDs(keys []*tuf.PrivateKey) string {
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, k.ID())
	}
	return strings.Join(ids, ", ")
}

// semverPattern is the Firmware API's spec.version pattern.
var semverPattern = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-((0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?(\+([0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*))?$`)

// targetPattern is the Firmware API's spec.metadata.target pattern.
var targetPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)

func checkTargetPath(p string) error {
	if !targetPattern.MatchString(p) || len(p) > 512 || slices.ContainsFunc(strings.Split(p, "/"), func(s string) bool { return s == "." || s == ".." }) {
		return fmt.Errorf("invalid target path %q: use at most 512 characters A-Z a-z 0-9 . _ - in /-separated segments, without . or .. segments", p)
	}
	return nil
}

// release is a signed image, written by sign to REPODIR/releases/ and read
// by publish: the Firmware's version, models, artifact digest and signatures.
type release struct {
	Target     string             `json:"target"`
	SHA256     string             `json:"sha256"`
	Size       int64              `json:"size"`
	Version    string             `json:"version"`
	Models     []string           `json:"models"`
	Threshold  int                `json:"threshold"`
	Signatures []releaseSignature `json:"signatures"`
}

type releaseSignature struct {
	KeyID string `json:"keyID"`
	Value string `json:"value"`
}

// releaseFile is where sign writes the release of target.
func releaseFile(repoDir, target string) string {
	return filepath.Join(repoDir, "releases", strings.ReplaceAll(target, "/", "_")+".json")
}

func readRelease(repoDir, target string) (*release, error) {
	file := releaseFile(repoDir, target)
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: no such file; sign the image first: cairn firmware sign IMAGE --repo %s --target %s ...", file, repoDir, target)
	}
	if err != nil {
		return nil, err
	}
	var r release
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if r.Target != target || len(r.Signatures) == 0 {
		return nil, fmt.Errorf("%s is not a release of %s", file, target)
	}
	return &r, nil
}

// repoRoot decodes the repository's current root.json.
func repoRoot(repo *tuf.Repository) (*tuf.Root, error) {
	files, err := repo.Files()
	if err != nil {
		return nil, err
	}
	var env struct {
		Signed tuf.Root `json:"signed"`
	}
	if err := json.Unmarshal(files[tuf.RootFile], &env); err != nil {
		return nil, fmt.Errorf("reading %s: %w", tuf.RootFile, err)
	}
	return &env.Signed, nil
}

// rawEd25519 returns the ed25519 key behind k, for signing.Sign.
func rawEd25519(k *tuf.PrivateKey) (ed25519.PrivateKey, error) {
	b, err := k.MarshalKeyFile()
	if err != nil {
		return nil, err
	}
	var kf struct {
		Value struct {
			Private string `json:"private"`
		} `json:"keyval"`
	}
	if err := json.Unmarshal(b, &kf); err != nil {
		return nil, fmt.Errorf("decoding key %s", k.ID())
	}
	seed, err := hex.DecodeString(kf.Value.Private)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("decoding key %s: not an ed25519 seed", k.ID())
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// publicKeyBase64 is the trusted-keys ConfigMap form of a TUF public key.
func publicKeyBase64(k tuf.Key) (string, error) {
	raw, err := hex.DecodeString(k.Value.Public)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return "", fmt.Errorf("key %s is not an ed25519 public key", k.ID())
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

func newFirmwareSignCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var repoDir, keyDir, version, target, sbomFile string
	var models []string
	expiry := tuf.DefaultExpiry()
	cmd := &cobra.Command{
		Use:   "sign IMAGE --repo REPODIR --keys KEYDIR --version VERSION --model MODEL [--sbom FILE]",
		Short: "Add a firmware image to the repository and sign it",
		Long: `Hash IMAGE, add it to the repository's targets with its version and
compatible models, and publish new targets, snapshot and timestamp metadata
signed with the keys in KEYDIR. The image is also signed with every targets
key; the signatures are written to REPODIR/releases/TARGET.json (TARGET with
/ replaced by _), from which publish builds the Firmware.

The target path defaults to MODEL/VERSION/IMAGE-FILE-NAME, with the first
--model. Signing a target again replaces it; other targets are kept.

With --sbom, the length and SHA-256 of the image's SBOM (CycloneDX, SPDX or
syft JSON, e.g. from "cairn sbom") are signed into the target, so a
Firmware's scan gate judges exactly that document (publish --sbom uploads it).`,
		Example: `  cairn firmware sign gw2-1.4.2.img --repo repo/ --keys keys/ --version 1.4.2 --model acme-gw-2 --model acme-gw-2b`,
		Args:    cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			image := args[0]
			switch {
			case repoDir == "":
				return errors.New(`required flag "repo" not set`)
			case keyDir == "":
				return errors.New(`required flag "keys" not set`)
			case version == "":
				return errors.New(`required flag "version" not set`)
			case len(models) == 0:
				return errors.New(`required flag "model" not set`)
			case !semverPattern.MatchString(version):
				return fmt.Errorf("invalid --version %q: must be a semantic version such as 1.4.2 or 2.0.0-rc.1", version)
			case len(models) > 64:
				return fmt.Errorf("%d --model flags given; a Firmware lists at most 64 models", len(models))
			}
			if err := checkExpiry(expiry); err != nil {
				return err
			}
			models = dedupe(models)
			if target == "" {
				target = strings.Join([]string{models[0], version, filepath.Base(image)}, "/")
			}
			if err := checkTargetPath(target); err != nil {
				return err
			}
			repo, err := openInitializedRepository(repoDir)
			if err != nil {
				return err
			}
			repo.Expiry = expiry
			signers, err := readSigners(keyDir, tuf.RoleTargets, tuf.RoleSnapshot, tuf.RoleTimestamp)
			if err != nil {
				return err
			}
			root, err := repoRoot(repo)
			if err != nil {
				return err
			}
			role := root.Roles[tuf.RoleTargets]
			for _, k := range signers.Targets {
				if !slices.Contains(role.KeyIDs, k.ID()) {
					return fmt.Errorf("targets key %s in %s is not trusted by the repository's root (version %d); use the repository's keys, or rotate-root to trust it", k.ID(), keyDir, root.Version)
				}
			}
			if len(signers.Targets) < role.Threshold {
				return fmt.Errorf("the repository needs %d targets keys to sign; %s has %d", role.Threshold, keyDir, len(signers.Targets))
			}

			file, err := os.Open(image)
			if err != nil {
				return fmt.Errorf("reading image: %w", err)
			}
			size, sum, err := tuf.HashTarget(file)
			_ = file.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", image, err)
			}
			if size == 0 {
				return fmt.Errorf("%s is empty", image)
			}
			rel := release{Target: target, SHA256: sum, Size: size, Version: version, Models: models, Threshold: role.Threshold}
			for _, k := range signers.Targets {
				priv, err := rawEd25519(k)
				if err != nil {
					return err
				}
				sig, err := signing.Sign(priv, sum)
				if err != nil {
					return err
				}
				rel.Signatures = append(rel.Signatures, releaseSignature{KeyID: releaseKeyID(k.ID()), Value: sig})
			}

			meta := tuf.Firmware{Version: version, Models: models}
			if sbomFile != "" {
				if meta.SBOM, err = sbomDigest(sbomFile); err != nil {
					return err
				}
			}
			if err := repo.AddTarget(target, size, sum, meta); err != nil {
				return err
			}
			if err := repo.Publish(signers, time.Now()); err != nil {
				return err
			}
			out, err := json.MarshalIndent(rel, "", "  ")
			if err != nil {
				return err
			}
			relFile := releaseFile(repoDir, target)
			if err := os.MkdirAll(filepath.Dir(relFile), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(relFile, append(out, '\n'), 0o644); err != nil {
				return fmt.Errorf("writing release: %w", err)
			}
			fmt.Fprintf(streams.Out, "target:  %s\nsha256:  %s\nsize:    %d\nrelease: %s\n", target, sum, size, relFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&repoDir, "repo", "", "Repository directory created by init.")
	cmd.Flags().StringVar(&keyDir, "keys", "", "Directory holding the targets, snapshot and timestamp key files.")
	cmd.Flags().StringVar(&version, "version", "", "Firmware version (semantic versioning).")
	cmd.Flags().StringArrayVar(&models, "model", nil, "Hardware model that can run the image (EdgeDevice spec.hardware.model); repeatable.")
	cmd.Flags().StringVar(&target, "target", "", "Target path in the repository (default MODEL/VERSION/IMAGE-FILE-NAME).")
	cmd.Flags().StringVar(&sbomFile, "sbom", "", "SBOM of the image (JSON) whose digest is signed with it.")
	addExpiryFlags(cmd.Flags(), &expiry, tuf.RoleTargets, tuf.RoleSnapshot, tuf.RoleTimestamp)
	_ = cmd.MarkFlagDirname("repo")
	_ = cmd.MarkFlagDirname("keys")
	return cmd
}

func newFirmwareRotateRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var repoDir, oldKeyDir, newKeyDir string
	var th thresholds
	expiry := tuf.DefaultExpiry()
	cmd := &cobra.Command{
		Use:   "rotate-root --repo REPODIR --keys OLDKEYDIR --new-keys NEWKEYDIR",
		Short: "Replace the repository's keys with a new root version",
		Long: `Write the next root version trusting the keys in NEWKEYDIR (ROLE.key and
ROLE-*.key for every role), signed by the current root keys from OLDKEYDIR
and by the new root keys, so that devices trusting the current root accept
it. Then re-sign targets, snapshot and timestamp metadata with the new keys.
Run publish (or refresh --apply) afterwards to update the cluster.`,
		Example: `  cairn firmware keygen keys-2027/
  cairn firmware rotate-root --repo repo/ --keys keys/ --new-keys keys-2027/`,
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			switch {
			case repoDir == "":
				return errors.New(`required flag "repo" not set`)
			case oldKeyDir == "":
				return errors.New(`required flag "keys" not set`)
			case newKeyDir == "":
				return errors.New(`required flag "new-keys" not set`)
			}
			if err := checkExpiry(expiry); err != nil {
				return err
			}
			repo, err := openInitializedRepository(repoDir)
			if err != nil {
				return err
			}
			repo.Expiry = expiry
			oldRoot, err := readRoleKeys(oldKeyDir, tuf.RoleRoot)
			if err != nil {
				return err
			}
			signers, err := readSigners(newKeyDir, firmwareRoles...)
			if err != nil {
				return err
			}
			now := time.Now()
			if err := repo.RotateRoot(th.rootConfig(signers), oldRoot, signers.Root, now); err != nil {
				return err
			}
			if err := repo.Publish(signers, now); err != nil {
				return fmt.Errorf("root rotated, but re-signing with the new keys failed: %w", err)
			}
			root, err := repoRoot(repo)
			if err != nil {
				return err
			}
			fmt.Fprintf(streams.Out, "rotated root to version %d (%s); run cairn firmware publish or refresh --apply to update the cluster\n", root.Version, tuf.RootVersionFile(root.Version))
			return nil
		},
	}
	cmd.Flags().StringVar(&repoDir, "repo", "", "Repository directory created by init.")
	cmd.Flags().StringVar(&oldKeyDir, "keys", "", "Directory holding the current root key files.")
	cmd.Flags().StringVar(&newKeyDir, "new-keys", "", "Directory holding the new key files for every role (from keygen).")
	th.addFlags(cmd.Flags())
	addExpiryFlags(cmd.Flags(), &expiry, firmwareRoles...)
	_ = cmd.MarkFlagDirname("repo")
	_ = cmd.MarkFlagDirname("keys")
	_ = cmd.MarkFlagDirname("new-keys")
	return cmd
}

// sbomDigest hashes an SBOM file, refusing what is not a JSON document.
func sbomDigest(file string) (*tuf.SBOMDigest, error) {
	doc, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading SBOM: %w", err)
	}
	if !json.Valid(doc) {
		return nil, fmt.Errorf("--sbom %s is not a JSON document (CycloneDX, SPDX or syft JSON)", file)
	}
	sum := sha256.Sum256(doc)
	return &tuf.SBOMDigest{Length: int64(len(doc)), SHA256: hex.EncodeToString(sum[:])}, nil
}
