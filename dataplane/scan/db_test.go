package scan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-platform/cairn/dataplane/scan/scantest"
)

func TestImportDB(t *testing.T) {
	dbDir := importedDB(t)
	db, err := OpenDB(dbDir)
	if err != nil {
		t.Fatalf("OpenDB: %v", err)
	}
	defer db.Close()
	if time.Since(db.Built()) > time.Hour {
		t.Errorf("Built = %v, want the planted DB's recent build time", db.Built())
	}
	if !strings.HasPrefix(db.Schema(), "v6.") {
		t.Errorf("Schema = %q, want v6.x.y", db.Schema())
	}
}

func TestImportDBRejectsURL(t *testing.T) {
	err := ImportDB(t.Context(), "https://grype.anchore.io/databases/x.tar.gz", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "MirrorDB") {
		t.Fatalf("err = %v, want a pointer to MirrorDB", err)
	}
}

func TestMirrorDB(t *testing.T) {
	url := scantest.ServeMirror(t, testArchive(t))
	dbDir := t.TempDir()
	if err := MirrorDB(t.Context(), url, dbDir, nil); err != nil {
		t.Fatalf("MirrorDB: %v", err)
	}
	db, err := OpenDB(dbDir)
	if err != nil {
		t.Fatalf("OpenDB after mirror: %v", err)
	}
	db.Close()
}

func TestMirrorDBRefusesBadChecksum(t *testing.T) {
	url := scantest.ServeMirror(t, testArchive(t), scantest.CorruptArchive())
	dbDir := t.TempDir()
	err := MirrorDB(t.Context(), url, dbDir, nil)
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("MirrorDB err = %v, want ErrChecksumMismatch", err)
	}
	if _, err := OpenDB(dbDir); !errors.Is(err, ErrNoDB) {
		t.Fatalf("after refused mirror, OpenDB err = %v, want ErrNoDB", err)
	}
}

func TestOpenDBMissing(t *testing.T) {
	_, err := OpenDB(t.TempDir())
	if !errors.Is(err, ErrNoDB) {
		t.Fatalf("err = %v, want ErrNoDB", err)
	}
	if !strings.Contains(err.Error(), "ImportDB") {
		t.Errorf("error %q should say how to import a DB", err)
	}
}

func TestImportDBZstd(t *testing.T) {
	buildDir := t.TempDir()
	scantest.BuildDB(t, buildDir, scantest.DefaultVulns())
	archive := scantest.PackageDBZstd(t, buildDir)
	dbDir := t.TempDir()
	if err := ImportDB(t.Context(), archive, dbDir); err != nil {
		t.Fatalf("ImportDB(.tar.zst): %v", err)
	}
	db, err := OpenDB(dbDir)
	if err != nil {
		t.Fatalf("OpenDB: %v", err)
	}
	db.Close()
}

func TestImportDBBadArchiveKeepsPrevious(t *testing.T) {
	dbDir := importedDB(t)
	bad := filepath.Join(t.TempDir(), "vulnerability-db_v6.1.10_bad.tar.gz")
	if err := os.WriteFile(bad, []byte("this is not a grype database"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ImportDB(t.Context(), bad, dbDir); err == nil {
		t.Fatal("ImportDB accepted a garbage archive")
	}
	db, err := OpenDB(dbDir)
	if err != nil {
		t.Fatalf("previous DB unusable after refused import: %v", err)
	}
	db.Close()
}
