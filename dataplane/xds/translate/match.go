package translate

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
)

// specificity orders route entries inside a virtual host: Envoy takes the
// first match, so the most specific match must come first.
type specificity struct {
	pathKind int // 0 exact, 1 prefix, 2 regex
	pathLen  int
	headers  int
	query    int
	method   bool
}

func (a specificity) moreSpecificThan(b specificity) bool {
	switch {
	case a.pathKind != b.pathKind:
		return a.pathKind < b.pathKind
	case a.pathLen != b.pathLen:
		return a.pathLen > b.pathLen
	case a.method != b.method:
		return a.method
	case a.headers != b.headers:
		return a.headers > b.headers
	default:
		return a.query > b.query
	}
}

// translatedMatch is one RouteMatch in both flavors, with what is needed to
// order it and to detect identical matches.
type translatedMatch struct {
	envoy, grpc *routev3.RouteMatch
	spec        specificity
	// canonical is equal for two matches that select exactly the same requests.
	canonical string
}

// defaultMatch is what an empty matches list means: every request.
var defaultMatch = gatewayv1alpha1.RouteMatch{Path: &gatewayv1alpha1.PathMatch{Type: gatewayv1alpha1.PathMatchPrefix, Value: "/"}}

func translateMatch(m gatewayv1alpha1.RouteMatch) (translatedMatch, error) {
	path := gatewayv1alpha1.PathMatch{Type: gatewayv1alpha1.PathMatchPrefix, Value: "/"}
	if m.Path != nil {
		path = *m.Path
	}
	tm := translatedMatch{envoy: &routev3.RouteMatch{}, grpc: &routev3.RouteMatch{}}
	var canon []string
	switch path.Type {
	case gatewayv1alpha1.PathMatchExact:
		tm.envoy.PathSpecifier = &routev3.RouteMatch_Path{Path: path.Value}
		tm.grpc.PathSpecifier = &routev3.RouteMatch_Path{Path: path.Value}
		tm.spec = specificity{pathKind: 0, pathLen: len(path.Value)}
	case gatewayv1alpha1.PathMatchRegularExpression:
		if _, err := regexp.Compile(path.Value); err != nil {
			return tm, problemf(ReasonInvalid, "path: invalid regular expression %q: %w", path.Value, err)
		}
		tm.envoy.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: path.Value}}
		tm.grpc.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: path.Value}}
		tm.spec = specificity{pathKind: 2, pathLen: len(path.Value)}
	default: // PathPrefix matches whole segments: "/api" is "/api" and "/api/…", never "/apix".
		value := path.Value
		if value == "/" || strings.HasSuffix(value, "/") {
			tm.envoy.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: value}
			tm.grpc.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: value}
		} else {
			tm.envoy.PathSpecifier = &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: value}
			// grpc-go knows prefix, path and regex only.
			tm.grpc.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: regexp.QuoteMeta(value) + "(/.*)?"}}
		}
		tm.spec = specificity{pathKind: 1, pathLen: len(strings.TrimSuffix(value, "/"))}
	}
	canon = append(canon, fmt.Sprintf("path:%s:%s", path.Type, path.Value))

	headers := append([]gatewayv1alpha1.HeaderMatch(nil), m.Headers...)
	sort.Slice(headers, func(i, j int) bool { return strings.ToLower(headers[i].Name) < strings.ToLower(headers[j].Name) })
	for _, h := range headers {
		hm, err := headerMatcher(strings.ToLower(h.Name), h.Type, h.Value)
		if err != nil {
			return tm, fmt.Errorf("headers[%s]: %w", h.Name, err)
		}
		tm.envoy.Headers = append(tm.envoy.Headers, hm)
		tm.grpc.Headers = append(tm.grpc.Headers, hm)
		canon = append(canon, fmt.Sprintf("header:%s:%s:%s", strings.ToLower(h.Name), h.Type, deref(h.Value)))
	}
	if m.Method != nil {
		hm, _ := headerMatcher(":method", gatewayv1alpha1.StringMatchExact, (*string)(m.Method))
		tm.envoy.Headers = append(tm.envoy.Headers, hm)
		tm.grpc.Headers = append(tm.grpc.Headers, hm)
		tm.spec.method = true
		canon = append(canon, "method:"+string(*m.Method))
	}
	tm.spec.headers = len(headers)

	params := append([]gatewayv1alpha1.QueryParamMatch(nil), m.QueryParams...)
	sort.Slice(params, func(i, j int) bool { return params[i].Name < params[j].Name })
	for _, q := range params {
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		switch q.Type {
		case gatewayv1alpha1.StringMatchPresent:
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		default:
			sm, err := stringMatcher(q.Type, deref(q.Value))
			if err != nil {
				return tm, fmt.Errorf("queryParams[%s]: %w", q.Name, err)
			}
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}
		}
		// grpc-go skips routes with query matchers (gRPC requests carry
		// none), which is right: dropping them would widen the match.
		tm.envoy.QueryParameters = append(tm.envoy.QueryParameters, qm)
		tm.grpc.QueryParameters = append(tm.grpc.QueryParameters, qm)
		canon = append(canon, fmt.Sprintf("query:%s:%s:%s", q.Name, q.Type, deref(q.Value)))
	}
	tm.spec.query = len(params)
	tm.canonical = strings.Join(canon, "|")
	return tm, nil
}

func headerMatcher(name string, t gatewayv1alpha1.StringMatchType, value *string) (*routev3.HeaderMatcher, error) {
	if t == gatewayv1alpha1.StringMatchPresent {
		return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}, nil
	}
	sm, err := stringMatcher(t, deref(value))
	if err != nil {
		return nil, err
	}
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}, nil
}

func stringMatcher(t gatewayv1alpha1.StringMatchType, value string) (*matcherv3.StringMatcher, error) {
	if t == gatewayv1alpha1.StringMatchRegularExpression {
		if _, err := regexp.Compile(value); err != nil {
			return nil, problemf(ReasonInvalid, "invalid regular expression %q: %w", value, err)
		}
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: value}}}, nil
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
