package scan

import (
	"fmt"
	"io"

	"github.com/anchore/syft/syft/format"
	"github.com/anchore/syft/syft/format/cyclonedxjson"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/format/syftjson"
	"github.com/anchore/syft/syft/sbom"
)

// SBOM output formats accepted by EncodeSBOM.
const (
	FormatCycloneDXJSON = "cyclonedx-json"
	FormatSPDXJSON      = "spdx-json"
	FormatSyftJSON      = "syft-json"
)

// EncodeSBOM writes s to w in one of the Format* formats.
func EncodeSBOM(w io.Writer, s *sbom.SBOM, fmtName string) error {
	if s == nil {
		return fmt.Errorf("encode SBOM: nil SBOM")
	}
	enc, err := encoder(fmtName)
	if err != nil {
		return err
	}
	if err := enc.Encode(w, *s); err != nil {
		return fmt.Errorf("encode SBOM as %s: %w", fmtName, err)
	}
	return nil
}

func encoder(fmtName string) (sbom.FormatEncoder, error) {
	switch fmtName {
	case FormatCycloneDXJSON:
		return cyclonedxjson.NewFormatEncoderWithConfig(cyclonedxjson.DefaultEncoderConfig())
	case FormatSPDXJSON:
		return spdxjson.NewFormatEncoderWithConfig(spdxjson.DefaultEncoderConfig())
	case FormatSyftJSON:
		return syftjson.NewFormatEncoder(), nil
	}
	return nil, fmt.Errorf("unknown SBOM format %q (want %s, %s or %s)", fmtName, FormatCycloneDXJSON, FormatSPDXJSON, FormatSyftJSON)
}

// decoders are the formats DecodeSBOM accepts: the ones EncodeSBOM writes.
var decoders = format.NewDecoderCollection(
	syftjson.NewFormatDecoder(),
	cyclonedxjson.NewFormatDecoder(),
	spdxjson.NewFormatDecoder(),
)

// DecodeSBOM reads a CycloneDX JSON, SPDX JSON or syft JSON SBOM, detecting
// the format, and returns it with the detected format name.
func DecodeSBOM(r io.Reader) (*sbom.SBOM, string, error) {
	s, id, _, err := decoders.Decode(r)
	if err != nil {
		return nil, "", fmt.Errorf("decode SBOM: %w: %w", ErrInvalidSBOM, err)
	}
	if s == nil {
		return nil, "", fmt.Errorf("decode SBOM: %w: unrecognised format (want %s, %s or %s)", ErrInvalidSBOM, FormatCycloneDXJSON, FormatSPDXJSON, FormatSyftJSON)
	}
	return s, string(id), nil
}
