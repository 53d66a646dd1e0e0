package scan

import "context"

// ResolveImage returns ref pinned to the digest its tag points at now
// ("registry/repo@sha256:…"), so callers can cache reports by content.
func (s *Scanner) ResolveImage(ctx context.Context, ref string) (string, error) {
	d, err := resolveImage(ctx, ref, s.opts.Registry)
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// DBBuilt returns when the loaded vulnerability database was built, opening
// it if needed (ErrNoDB when none is imported).
func (s *Scanner) DBBuilt() (string, error) {
	db, err := s.openDB()
	if err != nil {
		return "", err
	}
	return db.Built().UTC().Format("2006-01-02T15:04:05Z"), nil
}
