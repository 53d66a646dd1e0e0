package gateway

import (
	"fmt"
	"regexp"

	gatewayv1alpha1 "github.com/cairn-platform/cairn/api/gateway/v1alpha1"
)

// routeSyntaxErrors finds what the API server's schema cannot: regular
// expressions that do not compile under RE2 (Envoy's engine, same syntax as
// Go's regexp).
func routeSyntaxErrors(route *gatewayv1alpha1.Route) []string {
	var errs []string
	for i, rule := range route.Spec.Rules {
		for j, m := range rule.Matches {
			where := fmt.Sprintf("rules[%d].matches[%d]", i, j)
			if m.Path != nil && m.Path.Type == gatewayv1alpha1.PathMatchRegularExpression {
				errs = appendRegexError(errs, where+".path", m.Path.Value)
			}
			for _, h := range m.Headers {
				if h.Type == gatewayv1alpha1.StringMatchRegularExpression && h.Value != nil {
					errs = appendRegexError(errs, fmt.Sprintf("%s.headers[%s]", where, h.Name), *h.Value)
				}
			}
			for _, q := range m.QueryParams {
				if q.Type == gatewayv1alpha1.StringMatchRegularExpression && q.Value != nil {
					errs = appendRegexError(errs, fmt.Sprintf("%s.queryParams[%s]", where, q.Name), *q.Value)
				}
			}
		}
	}
	return errs
}

func appendRegexError(errs []string, where, expr string) []string {
	if _, err := regexp.Compile(expr); err != nil {
		return append(errs, fmt.Sprintf("%s: invalid regular expression %q: %v", where, expr, err))
	}
	return errs
}
