package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/anchore/syft/syft/sbom"

	"github.com/cairn-platform/cairn/dataplane/scan/report"
)

// Options configures a Scanner.
type Options struct {
	// DBDir is where the vulnerability DB was imported (ImportDB/MirrorDB).
	DBDir string
	// Registry configures image pulls.
	Registry RegistryOptions
}

// Scanner ties SBOM generation and matching to one DB directory. The DB
// is opened on first use and reused; call Reload after importing a new one.
type Scanner struct {
	opts Options

	mu sync.Mutex
	db *DB
	// inUse is read-held by every scan for its whole run, so Reload and
	// Close wait for scans in flight instead of closing the DB under them.
	inUse sync.RWMutex
}

// NewScanner returns a Scanner; it does not touch the DB until first use,
// so a scanner can be constructed before any DB has been imported.
func NewScanner(opts Options) *Scanner { return &Scanner{opts: opts} }

// acquire returns the open DB and a release func to call when the scan is
// done with it.
func (s *Scanner) acquire() (*DB, func(), error) {
	s.inUse.RLock()
	db, err := s.openDB()
	if err != nil {
		s.inUse.RUnlock()
		return nil, nil, err
	}
	return db, s.inUse.RUnlock, nil
}

func (s *Scanner) openDB() (*DB, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		db, err := OpenDB(s.opts.DBDir)
		if err != nil {
			return nil, err
		}
		s.db = db
	}
	return s.db, nil
}

// Reload drops the open DB so the next scan opens the newly imported one;
// it waits for scans in flight, which finish on the old one.
func (s *Scanner) Reload() error { return s.Close() }

// Close releases the DB once no scan uses it.
func (s *Scanner) Close() error {
	s.inUse.Lock()
	defer s.inUse.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// ScanImage pulls ref with the scanner's registry options, catalogues it
// and matches it. The report's Digest is the manifest digest scanned.
func (s *Scanner) ScanImage(ctx context.Context, ref string) (report.Report, *sbom.SBOM, error) {
	return s.scan(ctx, Image(ref, s.opts.Registry))
}

// ScanDir catalogues and matches a directory tree.
func (s *Scanner) ScanDir(ctx context.Context, dir string) (report.Report, *sbom.SBOM, error) {
	return s.scan(ctx, Dir(dir))
}

// ScanSource catalogues and matches any Source (e.g. an OCI layout).
func (s *Scanner) ScanSource(ctx context.Context, src Source) (report.Report, *sbom.SBOM, error) {
	return s.scan(ctx, src)
}

// ScanSBOM matches an SBOM document (CycloneDX JSON, SPDX JSON or syft
// JSON) without cataloguing anything.
func (s *Scanner) ScanSBOM(ctx context.Context, r io.Reader) (report.Report, *sbom.SBOM, error) {
	// Open the DB first so "no DB" is reported before parsing errors.
	db, release, err := s.acquire()
	if err != nil {
		return report.Report{}, nil, err
	}
	defer release()
	raw, err := io.ReadAll(r)
	if err != nil {
		return report.Report{}, nil, fmt.Errorf("read SBOM: %w", err)
	}
	rep, sb, err := matchReader(ctx, db, bytes.NewReader(raw))
	if err != nil {
		return report.Report{}, nil, err
	}
	sum := sha256.Sum256(raw)
	rep.SBOMDigest = "sha256:" + hex.EncodeToString(sum[:])
	return rep, sb, nil
}

func (s *Scanner) scan(ctx context.Context, src Source) (report.Report, *sbom.SBOM, error) {
	// Fail fast on a missing DB before spending a pull and a catalogue.
	db, release, err := s.acquire()
	if err != nil {
		return report.Report{}, nil, err
	}
	defer release()
	sb, digest, err := generateSBOM(ctx, src)
	if err != nil {
		return report.Report{}, nil, err
	}
	rep, err := Match(ctx, db, sb)
	if err != nil {
		return report.Report{}, nil, err
	}
	rep.Subject, rep.Digest = src.Ref, digest
	return rep, sb, nil
}
