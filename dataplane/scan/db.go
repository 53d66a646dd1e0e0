package scan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"time"

	v6 "github.com/anchore/grype/grype/db/v6"
	"github.com/anchore/grype/grype/db/v6/installation"
	"github.com/anchore/grype/grype/vulnerability"
)

// DB is an opened grype v6 vulnerability database. It is safe for
// concurrent matching; Close it when done.
type DB struct {
	provider vulnerability.Provider
	built    time.Time
	schema   string
	path     string
}

// Built is when the database was built; reports carry it so callers can
// judge freshness themselves (age validation is off, see package doc).
func (d *DB) Built() time.Time { return d.built }

// Schema is the database schema version, e.g. "v6.1.10".
func (d *DB) Schema() string { return d.schema }

// Path is the SQLite file in use.
func (d *DB) Path() string { return d.path }

// Close releases the database.
func (d *DB) Close() error { return d.provider.Close() }

// curatorConfig lays the DB out as grype does (dbDir/6/vulnerability.db)
// with age validation off (air-gapped: a DB is as new as the last import)
// and checksum validation on (detects a DB file changed after import).
func curatorConfig(dbDir string) installation.Config {
	return installation.Config{
		DBRootDir:        dbDir,
		ValidateAge:      false,
		ValidateChecksum: true,
	}
}

// newCurator never gets a distribution client: every path we use (Import
// of a local file, Reader, Status) is offline, so grype can never call
// anchore's update service from here.
func newCurator(dbDir string) (v6.Curator, error) {
	return installation.NewCurator(curatorConfig(dbDir), nil)
}

var urlLike = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://`)

// ImportDB installs a grype v6 DB archive (.tar.gz, .tar.zst or .tar.xz as
// published by grype-db, or a bare vulnerability.db) into dbDir, replacing
// any previous one only once the new one has been unpacked and hydrated.
func ImportDB(ctx context.Context, archivePath, dbDir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if urlLike.MatchString(archivePath) {
		return fmt.Errorf("import DB: %q is a URL; use MirrorDB to download", archivePath)
	}
	if _, err := os.Stat(archivePath); err != nil {
		return fmt.Errorf("import DB: %w", err)
	}
	if err := os.MkdirAll(dbDir, 0o700); err != nil {
		return fmt.Errorf("import DB: %w", err)
	}
	c, err := newCurator(dbDir)
	if err != nil {
		return fmt.Errorf("import DB: %w", err)
	}
	if err := c.Import(archivePath); err != nil {
		return fmt.Errorf("import DB from %s: %w", archivePath, err)
	}
	if st := c.Status(); st.Error != nil {
		return fmt.Errorf("import DB from %s: imported database is unusable: %w", archivePath, st.Error)
	}
	return nil
}

// OpenDB opens the DB previously imported into dbDir.
func OpenDB(dbDir string) (*DB, error) {
	cfg := curatorConfig(dbDir)
	if _, err := os.Stat(cfg.DBFilePath()); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: import a grype v6 DB archive with scan.ImportDB (or scan.MirrorDB from a latest.json mirror) first", ErrNoDB, dbDir)
	}
	c, err := newCurator(dbDir)
	if err != nil {
		return nil, fmt.Errorf("open DB: %w", err)
	}
	st := c.Status()
	if st.Error != nil {
		return nil, fmt.Errorf("open DB in %s: %w", dbDir, st.Error)
	}
	r, err := c.Reader()
	if err != nil {
		return nil, fmt.Errorf("open DB in %s: %w", dbDir, err)
	}
	return &DB{
		provider: v6.NewVulnerabilityProvider(r),
		built:    st.Built,
		schema:   st.SchemaVersion,
		path:     st.Path,
	}, nil
}
