package scanapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cairn-platform/cairn/dataplane/scan/report"
)

// Client calls a scanner service.
type Client struct {
	// BaseURL of the scanner, e.g. http://cairn-scanner.cairn-system.svc:8080.
	BaseURL string
	// Token, when set, is sent as a bearer token (the scanner's --token-file).
	Token string
	// HTTP is the client used; nil means http.DefaultClient. Scans of big
	// images take tens of seconds: bound them with the context.
	HTTP *http.Client
}

// Error is a refusal by the scanner, with its code.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// ImageProblem reports whether the scanner refused because of what it was
// given (an image missing or not readable with the scanner's credentials,
// an SBOM it cannot parse), rather than a problem of its own.
func ImageProblem(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Code == CodeImageNotFound || e.Code == CodeUnauthorized || e.Code == CodeBadRequest || e.Code == CodeInvalidSBOM)
}

// ScanImage asks the scanner for a report on image.
func (c *Client) ScanImage(ctx context.Context, image string) (report.Report, error) {
	body, err := json.Marshal(ScanImageRequest{Image: image})
	if err != nil {
		return report.Report{}, fmt.Errorf("encoding scan request: %w", err)
	}
	return c.post(ctx, ScanImagePath, bytes.NewReader(body))
}

// ScanSBOM asks the scanner to match an SBOM document.
func (c *Client) ScanSBOM(ctx context.Context, sbom io.Reader) (report.Report, error) {
	return c.post(ctx, ScanSBOMPath, sbom)
}

func (c *Client) post(ctx context.Context, path string, body io.Reader) (report.Report, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.BaseURL, "/")+path, body)
	if err != nil {
		return report.Report{}, fmt.Errorf("scanner request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return report.Report{}, fmt.Errorf("calling the scanner: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return report.Report{}, fmt.Errorf("reading the scanner's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e ErrorResponse
		if json.Unmarshal(data, &e) != nil || e.Message == "" {
			return report.Report{}, fmt.Errorf("scanner answered %s: %.200s", resp.Status, data)
		}
		return report.Report{}, &Error{Code: e.Code, Message: e.Message}
	}
	var r report.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return report.Report{}, fmt.Errorf("decoding the scanner's report: %w", err)
	}
	return r, nil
}
