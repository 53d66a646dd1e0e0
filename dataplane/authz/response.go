package authz

import (
	"fmt"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// Headers added to allowed requests on their way upstream.
const (
	HeaderSubject  = "x-auth-subject"
	HeaderClientID = "x-auth-client-id"
	HeaderUsername = "x-auth-username"
	HeaderScope    = "x-auth-scope"
	HeaderTenant   = "x-cairn-tenant"
	HeaderDegraded = "x-cairn-auth-degraded"
)

// identityHeaders vouch for the caller. Whatever the client sent under these
// names is always overwritten or removed.
var identityHeaders = []string{HeaderSubject, HeaderClientID, HeaderUsername, HeaderScope}

// allowed lets a request with a valid token through, telling the upstream
// who is calling.
func allowed(in introspection, tenant string) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{HeadersToRemove: []string{HeaderDegraded}}
	for _, h := range []struct{ name, value string }{
		{HeaderSubject, in.Subject},
		{HeaderClientID, in.ClientID},
		{HeaderUsername, in.Username},
		{HeaderScope, strings.Join(in.Scopes, " ")},
	} {
		if h.value == "" {
			ok.HeadersToRemove = append(ok.HeadersToRemove, h.name)
			continue
		}
		ok.Headers = append(ok.Headers, overwrite(h.name, h.value))
	}
	ok.Headers = append(ok.Headers, overwrite(HeaderTenant, tenant))
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// degraded lets a request through unauthenticated (failure mode Allow),
// marked so the upstream can tell.
func degraded(tenant string) *authv3.CheckResponse {
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers:         []*corev3.HeaderValueOption{overwrite(HeaderDegraded, "true"), overwrite(HeaderTenant, tenant)},
			HeadersToRemove: slices.Clone(identityHeaders),
		}},
	}
}

// missingToken answers a request without a bearer token (RFC 6750 section
// 3.1: no error code when no credentials were sent).
func missingToken() *authv3.CheckResponse {
	return denied(codes.Unauthenticated, typev3.StatusCode_Unauthorized,
		"missing bearer token", `Bearer`)
}

func invalidToken() *authv3.CheckResponse {
	return denied(codes.Unauthenticated, typev3.StatusCode_Unauthorized,
		"bearer token is not active", `Bearer error="invalid_token"`)
}

func insufficientScope(missing []string) *authv3.CheckResponse {
	scopes := strings.Join(missing, " ")
	return denied(codes.PermissionDenied, typev3.StatusCode_Forbidden,
		"bearer token lacks scope: "+scopes,
		fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q`, scopes))
}

func unknownPolicy(id string) *authv3.CheckResponse {
	return denied(codes.PermissionDenied, typev3.StatusCode_Forbidden,
		fmt.Sprintf("no authorization policy %q is configured for this route", id), "")
}

// unavailable is failure mode Deny. UNAVAILABLE rather than a gRPC error so
// Envoy answers 503 as told instead of applying its own failure mode.
func unavailable() *authv3.CheckResponse {
	return denied(codes.Unavailable, typev3.StatusCode_ServiceUnavailable,
		"authorization service unavailable", "")
}

func denied(code codes.Code, status typev3.StatusCode, body, challenge string) *authv3.CheckResponse {
	headers := []*corev3.HeaderValueOption{overwrite("content-type", "text/plain; charset=utf-8")}
	if challenge != "" {
		headers = append(headers, overwrite("www-authenticate", challenge))
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code), Message: body},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: status},
			Headers: headers,
			Body:    body + "\n",
		}},
	}
}

// overwrite sets a header, replacing any value the client sent. The append
// action is explicit: its proto default appends, so a client could otherwise
// smuggle in a second x-auth-subject.
func overwrite(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}
