package scancmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-platform/cairn/dataplane/scan"
	"github.com/cairn-platform/cairn/dataplane/scan/report"
)

type scanOptions struct {
	reg      registryFlags
	dbDir    string
	dbImport string
	dbMirror string
	failOn   string
	ignore   []string
	output   string
}

// NewScanCommand returns `cairn scan`.
func NewScanCommand() *cobra.Command {
	o := &scanOptions{}
	cmd := &cobra.Command{
		Use:   "scan IMAGE|SBOM|DIR",
		Short: "Match an image, SBOM or directory against the local vulnerability database",
		Long: `Catalogue an image, OCI layout/archive or directory (or read an SBOM in
CycloneDX, SPDX or syft JSON) and match its packages against a grype (schema v6)
database on this machine: import one with --db-import, or mirror one from an
in-house latest.json with --db-mirror. Nothing is fetched from the internet.

With --fail-on, the command exits 1 when a finding at or above that severity
is not on the --ignore list, so it can gate a CI pipeline.`,
		Example: `  cairn scan --db-import vulnerability-db_v6.tar.zst registry.example.com/shop/app:1.4
  cairn scan app.cdx.json --fail-on high --ignore CVE-2024-45337
  cairn scan ./rootfs -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), cmd, args[0])
		},
	}
	dbDir := ""
	if cache, err := os.UserCacheDir(); err == nil {
		dbDir = filepath.Join(cache, "cairn", "grype-db")
	}
	fs := cmd.Flags()
	fs.StringVar(&o.dbDir, "db-dir", dbDir, "Directory of the vulnerability database.")
	fs.StringVar(&o.dbImport, "db-import", "", "Import this grype DB archive (.tar.gz/.tar.zst) into --db-dir first.")
	fs.StringVar(&o.dbMirror, "db-mirror", "", "Update --db-dir from this latest.json URL first.")
	fs.StringVar(&o.failOn, "fail-on", "", "Exit 1 on a finding of this severity or higher: negligible, low, medium, high or critical.")
	fs.StringSliceVar(&o.ignore, "ignore", nil, "Vulnerability IDs to accept (repeat or comma-separate).")
	fs.StringVarP(&o.output, "output", "o", "table", "Output: table or json.")
	o.reg.add(fs)
	return cmd
}

func (o *scanOptions) run(ctx context.Context, cmd *cobra.Command, arg string) error {
	policy, err := o.policy()
	if err != nil {
		return err
	}
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("unknown --output %q: want table or json", o.output)
	}
	if o.dbImport != "" {
		if err := scan.ImportDB(ctx, o.dbImport, o.dbDir); err != nil {
			return err
		}
	}
	if o.dbMirror != "" {
		if err := scan.MirrorDB(ctx, o.dbMirror, o.dbDir, &http.Client{Timeout: 10 * time.Minute}); err != nil {
			return err
		}
	}
	reg, err := o.reg.options()
	if err != nil {
		return err
	}
	scanner := scan.NewScanner(scan.Options{DBDir: o.dbDir, Registry: reg})
	defer func() { _ = scanner.Close() }()

	rep, err := o.scan(ctx, scanner, arg, reg)
	if err != nil {
		return err
	}
	verdict := report.Evaluate(rep, policy, time.Now())
	if err := o.print(cmd.OutOrStdout(), rep, verdict); err != nil {
		return err
	}
	if verdict.Blocked {
		return fmt.Errorf("%s", verdict.Summary(5))
	}
	return nil
}

// scan reads arg as an SBOM when it is a file that parses as one, and as a
// source to catalogue otherwise.
func (o *scanOptions) scan(ctx context.Context, s *scan.Scanner, arg string, reg scan.RegistryOptions) (report.Report, error) {
	if info, err := os.Stat(arg); err == nil && info.Mode().IsRegular() {
		data, err := os.ReadFile(arg)
		if err != nil {
			return report.Report{}, err
		}
		if looksLikeSBOM(data) {
			rep, _, err := s.ScanSBOM(ctx, bytes.NewReader(data))
			if err == nil {
				rep.Subject = arg
			}
			return rep, err
		}
	}
	src, err := source(arg, reg)
	if err != nil {
		return report.Report{}, err
	}
	rep, _, err := s.ScanSource(ctx, src)
	return rep, err
}

// looksLikeSBOM is a cheap sniff before a full decode: SBOMs are JSON
// objects, image archives are tarballs.
func looksLikeSBOM(data []byte) bool {
	trimmed := bytes.TrimSpace(data)
	return len(trimmed) > 0 && trimmed[0] == '{' && json.Valid(trimmed)
}

func (o *scanOptions) policy() (report.Policy, error) {
	var p report.Policy
	if o.failOn != "" {
		sev, err := report.ParseSeverity(o.failOn)
		if err != nil || sev == report.Unknown {
			return p, fmt.Errorf("--fail-on %q: want negligible, low, medium, high or critical", o.failOn)
		}
		p.FailOn = sev
	}
	for _, id := range o.ignore {
		if id = strings.TrimSpace(id); id != "" {
			p.Ignore = append(p.Ignore, report.Ignore{ID: id, Reason: "--ignore"})
		}
	}
	return p, nil
}

func (o *scanOptions) print(w io.Writer, rep report.Report, v report.Verdict) error {
	if o.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			report.Report
			Verdict report.Verdict `json:"verdict"`
		}{rep, v})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tPACKAGE\tVERSION\tFIXED IN\tTYPE")
	ignored := map[string]bool{}
	for _, f := range v.Ignored {
		ignored[f.ID] = true
	}
	for _, f := range rep.Findings {
		id := f.ID
		if ignored[id] {
			id += " (ignored)"
		}
		fixed := strings.Join(f.FixedIn, ", ")
		if fixed == "" {
			fixed = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", id, f.Severity, f.Package, f.Version, fixed, f.Type)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	subject := rep.Subject
	if rep.Digest != "" {
		subject += " (" + rep.Digest + ")"
	}
	_, err := fmt.Fprintf(w, "\n%s: %d packages, %d findings; database built %s\n", subject, rep.Packages, len(rep.Findings), rep.DBBuilt.UTC().Format(time.RFC3339))
	return err
}
