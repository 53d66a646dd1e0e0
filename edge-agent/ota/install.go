package ota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-platform/cairn/dataplane/ota/delta"
	"github.com/cairn-platform/cairn/edge-agent/protocol"
	"github.com/cairn-platform/cairn/internal/atomicfile"
)

// install downloads, verifies and writes the assignment's image into the
// inactive slot and arms a trial boot. It returns true when the device must
// reboot.
func (m *Manager) install(ctx context.Context, j *job, booted BootInfo) (bool, error) {
	a := j.Assignment
	running, _, err := m.readSlot(booted.Slot)
	if err != nil {
		return false, fmt.Errorf("ota: %w", err)
	}
	ti, err := m.resolve(ctx, a)
	if err != nil {
		m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("cannot verify target %q in the update repository: %v", a.Target, err))
		return false, nil
	}
	ti.SHA256 = strings.ToLower(ti.SHA256)
	if b, err := hex.DecodeString(ti.SHA256); err != nil || len(b) != sha256.Size || ti.Length <= 0 {
		m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("the update metadata of %q has no valid length and sha256", a.Target))
		return false, nil
	}
	version := ti.Version
	if version == "" {
		version = a.Version
	}
	if a.Version != "" && ti.Version != "" && a.Version != ti.Version {
		m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("the assignment asks for version %s but the signed metadata of %q says %s", a.Version, a.Target, ti.Version))
		return false, nil
	}
	if j.Phase == "" {
		j.PrevSlot, j.PrevVersion, j.PrevSHA256 = booted.Slot, running.Version, running.SHA256
	}
	j.TargetVersion, j.TargetSHA256 = version, ti.SHA256

	if running.SHA256 == ti.SHA256 {
		j.TargetSlot = booted.Slot
		m.setPhase(j, protocol.PhaseSucceeded, fmt.Sprintf("already running %s in slot %s", version, booted.Slot))
		return false, nil
	}
	if running.Version != "" {
		c, err := compareVersions(version, running.Version)
		switch {
		case err != nil:
			if _, perr := parseSemver(version); perr != nil {
				m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("target version: %v", perr))
				return false, nil
			}
			m.log.Info("cannot compare versions; not checking for a downgrade", "running", running.Version, "target", version, "error", err.Error())
		case c < 0:
			m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("refusing to downgrade from %s to %s", running.Version, version))
			return false, nil
		}
	}
	inactive := otherSlot(booted.Slot)
	j.TargetSlot = inactive

	// Resumed after the image was written: skip the download.
	if meta, ok, err := m.readSlot(inactive); err == nil && ok && meta.SHA256 == ti.SHA256 && verifySlotImage(m.slotDir(inactive), meta) == nil {
		m.log.Info("the inactive slot already holds the target", "slot", inactive, "version", version)
		return m.tryBoot(j, inactive, version)
	}

	file, err := m.fetch(ctx, j, a, ti, running.SHA256, booted.Slot)
	if err != nil {
		if ctx.Err() != nil {
			// Interrupted: the job stays unfinished and resumes on the
			// next Handle.
			return false, fmt.Errorf("ota: download interrupted: %w", ctx.Err())
		}
		m.setPhase(j, protocol.PhaseFailed, err.Error())
		return false, nil
	}
	m.setPhase(j, protocol.PhaseInstalling, fmt.Sprintf("writing %s into slot %s", version, inactive))
	if err := m.writeSlot(inactive, file, slotMeta{Version: version, SHA256: ti.SHA256, Size: ti.Length}); err != nil {
		m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("cannot write slot %s: %v", inactive, err))
		return false, nil
	}
	_ = os.Remove(file)
	_ = os.Remove(m.etagPath(ti.SHA256))
	return m.tryBoot(j, inactive, version)
}

func (m *Manager) tryBoot(j *job, slot, version string) (bool, error) {
	if err := m.cfg.Bootloader.TryBoot(slot); err != nil {
		m.setPhase(j, protocol.PhaseFailed, fmt.Sprintf("bootloader refused to try slot %s: %v", slot, err))
		return false, nil
	}
	m.setPhase(j, protocol.PhaseRebooting, fmt.Sprintf("rebooting into %s in slot %s", version, slot))
	return true, nil
}

// resolve asks the Resolver, retrying a few times.
func (m *Manager) resolve(ctx context.Context, a protocol.OTAAssignment) (TargetInfo, error) {
	var err error
	for i := 0; i < m.attempts; i++ {
		var ti TargetInfo
		ti, err = m.cfg.Resolver.Resolve(ctx, a.Repository, a.Target)
		if err == nil {
			return ti, nil
		}
		m.log.Info("cannot resolve the update target", "target", a.Target, "attempt", i+1, "error", err.Error())
		if werr := m.wait(ctx, i); werr != nil {
			return ti, err
		}
	}
	return TargetInfo{}, err
}

// wait sleeps the backoff of attempt i.
func (m *Manager) wait(ctx context.Context, i int) error {
	d := m.backoff << i
	if d > time.Minute {
		d = time.Minute
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (m *Manager) partPath(sum string) string { return m.path("downloads", sum+".part") }
func (m *Manager) etagPath(sum string) string { return m.path("downloads", sum+".etag") }
func (m *Manager) stagePath(sum string) string {
	return m.path("staging", sum+".img")
}

// fetch returns a file holding the verified target image: reconstructed from
// a delta when possible, downloaded in full otherwise. Errors are messages
// for a person.
func (m *Manager) fetch(ctx context.Context, j *job, a protocol.OTAAssignment, ti TargetInfo, runningSHA, runningSlot string) (string, error) {
	j.Delta = false
	m.setPhase(j, protocol.PhaseDownloading, fmt.Sprintf("downloading %s", ti.Version))
	_, partErr := os.Stat(m.partPath(ti.SHA256))
	switch {
	case runningSHA == "":
		m.log.Info("no delta: the running image's sha256 is unknown")
	case partErr == nil:
		m.log.Info("resuming the partial download of the full image instead of trying a delta")
	default:
		file, err := m.fetchDelta(ctx, j, a, ti, runningSHA, runningSlot)
		if err == nil {
			return file, nil
		}
		_ = os.Remove(m.stagePath(ti.SHA256))
		if ctx.Err() != nil {
			return "", err
		}
		m.log.Info("delta unusable, downloading the full image", "reason", err.Error())
		j.Delta = false
		j.Note = "delta unusable: " + err.Error()
		m.setPhase(j, protocol.PhaseDownloading, fmt.Sprintf("downloading the full image of %s (%s)", ti.Version, j.Note))
	}
	return m.fetchFull(ctx, a, ti)
}

// fetchDelta downloads and applies the delta from the running image.
func (m *Manager) fetchDelta(ctx context.Context, j *job, a protocol.OTAAssignment, ti TargetInfo, runningSHA, runningSlot string) (string, error) {
	u, err := url.JoinPath(a.Repository, "deltas", runningSHA, ti.SHA256)
	if err != nil {
		return "", fmt.Errorf("invalid repository URL: %w", err)
	}
	oldPath := filepath.Join(m.slotDir(runningSlot), "image")
	fi, err := os.Stat(oldPath)
	if err != nil {
		return "", fmt.Errorf("running image: %w", err)
	}
	if fi.Size() > delta.MaxImageBytes {
		return "", fmt.Errorf("running image is larger than %d bytes", delta.MaxImageBytes)
	}
	req, err := m.newRequest(ctx, u)
	if err != nil {
		return "", err
	}
	m.log.V(1).Info("fetching delta", "url", redact(u))
	resp, err := m.cfg.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot fetch the delta from the running image: %w", unwrapURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the server has no delta from the running image (HTTP %d)", resp.StatusCode)
	}
	if resp.ContentLength >= ti.Length {
		return "", fmt.Errorf("the delta (%d bytes) is not smaller than the image (%d bytes)", resp.ContentLength, ti.Length)
	}
	old, err := os.ReadFile(oldPath)
	if err != nil {
		return "", fmt.Errorf("running image: %w", err)
	}
	if sum := sha256.Sum256(old); hex.EncodeToString(sum[:]) != runningSHA {
		return "", errors.New("the running image does not match its recorded sha256")
	}
	j.Delta = true
	m.setPhase(j, protocol.PhaseDownloading, fmt.Sprintf("downloading %s as a delta from %s", ti.Version, runningSHA[:12]))

	out := m.stagePath(ti.SHA256)
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", err
	}
	// Closed and checked on success below; this covers the error returns.
	defer func() { _ = f.Close() }()
	h := sha256.New()
	pw := &progressWriter{m: m, total: ti.Length}
	w := &limitWriter{w: io.MultiWriter(f, h, pw), n: ti.Length}
	body := &limitReader{r: resp.Body, n: ti.Length - 1, err: fmt.Errorf("the delta is not smaller than the image (%d bytes)", ti.Length)}
	if err := delta.ApplyTo(w, old, body); err != nil {
		return "", fmt.Errorf("cannot apply the delta: %w", unwrapURLError(err))
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if w.written != ti.Length || hex.EncodeToString(h.Sum(nil)) != ti.SHA256 {
		return "", fmt.Errorf("the image rebuilt from the delta (%d bytes) does not match the signed length and sha256", w.written)
	}
	return out, f.Close()
}

// permanent marks download errors that retrying does not fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// fetchFull downloads the full image into downloads/<sha>.part, resuming a
// partial file, and verifies it.
func (m *Manager) fetchFull(ctx context.Context, a protocol.OTAAssignment, ti TargetInfo) (string, error) {
	u, err := url.JoinPath(a.Repository, "targets", a.Target)
	if err != nil {
		return "", fmt.Errorf("invalid repository URL: %w", err)
	}
	part := m.partPath(ti.SHA256)
	for i := 0; ; i++ {
		err = m.downloadOnce(ctx, u, part, ti)
		if err == nil {
			break
		}
		var p permanent
		if errors.As(err, &p) || ctx.Err() != nil || i+1 >= m.attempts {
			return "", fmt.Errorf("cannot download %s: %w", a.Target, err)
		}
		m.log.Info("download failed, retrying", "url", redact(u), "attempt", i+1, "error", err.Error())
		if err := m.wait(ctx, i); err != nil {
			return "", err
		}
	}
	ok, err := fileMatches(part, ti.Length, ti.SHA256)
	if err != nil {
		return "", fmt.Errorf("cannot verify the download: %w", err)
	}
	if !ok {
		_ = os.Remove(part)
		_ = os.Remove(m.etagPath(ti.SHA256))
		return "", fmt.Errorf("the downloaded image of %s does not match the signed sha256 %s; the slot was not touched", a.Target, ti.SHA256)
	}
	return part, nil
}

// downloadOnce makes one request for the rest of the image.
func (m *Manager) downloadOnce(ctx context.Context, u, part string, ti TargetInfo) error {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return permanent{err}
	}
	// The written part is synced below and verified by fileMatches.
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return permanent{err}
	}
	have := fi.Size()
	if have > ti.Length {
		if err := f.Truncate(0); err != nil {
			return permanent{err}
		}
		have = 0
	}
	if have == ti.Length {
		return nil
	}
	req, err := m.newRequest(ctx, u)
	if err != nil {
		return permanent{err}
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		if etag, err := os.ReadFile(m.etagPath(ti.SHA256)); err == nil && len(etag) > 0 && !strings.HasPrefix(string(etag), "W/") {
			req.Header.Set("If-Range", string(etag))
		}
	}
	resp, err := m.cfg.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", redact(u), unwrapURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if have == 0 {
			return fmt.Errorf("GET %s: unexpected partial content", redact(u))
		}
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return err
		}
		if total >= 0 && total != ti.Length {
			return permanent{fmt.Errorf("the server's image is %d bytes, the signed metadata says %d", total, ti.Length)}
		}
		if start != have {
			// Not the range we asked for: start over.
			_ = f.Truncate(0)
			return fmt.Errorf("GET %s: server resumed at byte %d instead of %d", redact(u), start, have)
		}
	case http.StatusOK:
		if have > 0 {
			m.log.Info("the server sent the whole image; restarting the download", "had", have)
		}
		if err := f.Truncate(0); err != nil {
			return permanent{err}
		}
		have = 0
		if resp.ContentLength > ti.Length {
			return permanent{fmt.Errorf("the server's image is %d bytes, the signed metadata says %d", resp.ContentLength, ti.Length)}
		}
		if etag := resp.Header.Get("ETag"); etag != "" {
			_ = atomicfile.WriteFile(m.etagPath(ti.SHA256), []byte(etag), 0o644)
		} else {
			_ = os.Remove(m.etagPath(ti.SHA256))
		}
	case http.StatusRequestedRangeNotSatisfiable:
		_ = f.Truncate(0)
		return fmt.Errorf("GET %s: range not satisfiable, restarting", redact(u))
	default:
		err := fmt.Errorf("GET %s: HTTP %d", redact(u), resp.StatusCode)
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests {
			return err
		}
		return permanent{err}
	}
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return permanent{err}
	}
	pw := &progressWriter{m: m, total: ti.Length, done: have}
	_, _ = pw.Write(nil)
	n, err := io.CopyN(io.MultiWriter(f, pw), resp.Body, ti.Length-have)
	if serr := f.Sync(); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("GET %s: the body ended after %d of %d bytes", redact(u), have+n, ti.Length)
		}
		return fmt.Errorf("GET %s: %w", redact(u), unwrapURLError(err))
	}
	// Refuse a body longer than the signed length.
	var one [1]byte
	if k, _ := io.ReadFull(resp.Body, one[:]); k > 0 {
		_ = f.Truncate(0)
		return permanent{fmt.Errorf("the server sent more than the signed %d bytes", ti.Length)}
	}
	return nil
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*", -1).
func parseContentRange(s string) (start, total int64, err error) {
	bad := fmt.Errorf("invalid Content-Range %q", s)
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, bad
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, bad
	}
	first, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, bad
	}
	start, err = strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, 0, bad
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, bad
		}
	}
	return start, total, nil
}

func (m *Manager) newRequest(ctx context.Context, u string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %s: %w", redact(u), unwrapURLError(err))
	}
	if m.cfg.Prepare != nil {
		m.cfg.Prepare(req)
	}
	return req, nil
}

// writeSlot copies a verified image into slot: meta.json is removed first,
// the image is written to image.tmp, synced and renamed, then meta.json is
// written.
func (m *Manager) writeSlot(slot, src string, meta slotMeta) error {
	dir := m.slotDir(slot)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, "meta.json")); err != nil && !os.IsNotExist(err) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	tmp := filepath.Join(dir, "image.tmp")
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "image")); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return err
	}
	data, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, "meta.json"), data, 0o644)
}

// progressWriter reports Downloading progress in steps of 10%, at most
// once per Config.ProgressInterval (and always on completion): every report
// is a twin write the hub turns into a status write, and a fleet of
// devices on a fast link would otherwise flood the API server.
type progressWriter struct {
	m           *Manager
	total, done int64
	last        int32
	started     bool
	reported    time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	pct := int32(p.done * 100 / p.total)
	if pct > 100 {
		pct = 100
	}
	step := pct / 10 * 10
	if !p.started {
		p.started, p.last = true, step
		if step > 0 {
			p.report(step)
		}
		return len(b), nil
	}
	if step > p.last && (step == 100 || p.m.cfg.Now().Sub(p.reported) >= p.m.cfg.ProgressInterval) {
		p.last = step
		p.report(step)
	}
	return len(b), nil
}

func (p *progressWriter) report(step int32) {
	p.reported = p.m.cfg.Now()
	p.m.progress(step)
}

// limitWriter fails once more than n bytes are written.
type limitWriter struct {
	w       io.Writer
	n       int64
	written int64
}

func (l *limitWriter) Write(b []byte) (int, error) {
	if l.written+int64(len(b)) > l.n {
		return 0, fmt.Errorf("the result is longer than the signed %d bytes", l.n)
	}
	n, err := l.w.Write(b)
	l.written += int64(n)
	return n, err
}

// limitReader fails with err once more than n bytes are read.
type limitReader struct {
	r   io.Reader
	n   int64
	err error
}

func (l *limitReader) Read(b []byte) (int, error) {
	if l.n < 0 {
		return 0, l.err
	}
	if int64(len(b)) > l.n+1 {
		b = b[:l.n+1]
	}
	n, err := l.r.Read(b)
	l.n -= int64(n)
	if l.n < 0 {
		return n, l.err
	}
	return n, err
}

// redact removes userinfo and the query from a URL for logs and messages.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<invalid URL>"
	}
	p.User = nil
	p.RawQuery = ""
	p.Fragment = ""
	return p.String()
}

// unwrapURLError drops the *url.Error wrapper, whose text carries the full
// URL (with userinfo), keeping the cause.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
