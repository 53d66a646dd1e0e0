package authz

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// introspection is what an RFC 7662 endpoint says about a token.
type introspection struct {
	Active   bool
	Scopes   []string
	Expiry   time.Time // zero when the endpoint sent no exp
	Subject  string
	ClientID string
	Username string
}

// introspectionJSON is the response body of RFC 7662 section 2.2, reduced to
// the members we use.
type introspectionJSON struct {
	Active   *bool    `json:"active"`
	Scope    string   `json:"scope"`
	Exp      *float64 `json:"exp"` // NumericDate: seconds, possibly fractional
	Sub      string   `json:"sub"`
	ClientID string   `json:"client_id"`
	Username string   `json:"username"`
}

// parseIntrospection decodes an introspection response. "active" is the only
// required member; without it the answer is malformed, not negative.
func parseIntrospection(body []byte) (introspection, error) {
	var raw introspectionJSON
	if err := json.Unmarshal(body, &raw); err != nil {
		return introspection{}, fmt.Errorf("decoding introspection response: %w", err)
	}
	if raw.Active == nil {
		return introspection{}, errors.New("decoding introspection response: no \"active\" member")
	}
	in := introspection{
		Active:   *raw.Active,
		Scopes:   strings.Fields(raw.Scope),
		Subject:  raw.Sub,
		ClientID: raw.ClientID,
		Username: raw.Username,
	}
	if raw.Exp != nil {
		sec, frac := math.Modf(*raw.Exp)
		in.Expiry = time.Unix(int64(sec), int64(frac*1e9))
	}
	return in, nil
}
