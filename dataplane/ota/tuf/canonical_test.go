package tuf

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"key order", `{"b":1,"a":{"d":[3,2],"c":null},"A":true}`, `{"A":true,"a":{"c":null,"d":[3,2]},"b":1}`},
		{"whitespace", " {\n\t\"a\" : [ 1 , 2 ] ,\r\n \"b\":\"x y\" } ", `{"a":[1,2],"b":"x y"}`},
		{"no HTML escaping", `{"s":"<b>&amp;</b>"}`, `{"s":"<b>&amp;</b>"}`},
		{"escaped HTML decoded", `{"s":"\u003cb\u003e"}`, `{"s":"<b>"}`},
		{"quotes and backslash", `"a\"b\\c\/d"`, `"a\"b\\c/d"`},
		{"control characters", `"\u0001\n\t"`, `"\u0001\n\t"`},
		{"unicode kept as UTF-8", `"\u00e9t\u00e9 日本 😀"`, `"été 日本 😀"`},
		{"line separators escaped", "\"\u2028\"", `"\u2028"`},
		{"keys sorted bytewise", `{"é":1,"z":2,"Z":3}`, `{"Z":3,"z":2,"é":1}`},
		{"integers", `[0,-1,12345678901234567890]`, `[0,-1,12345678901234567890]`},
		{"empty containers", `{"a":{},"b":[]}`, `{"a":{},"b":[]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("Canonicalize(%s) = %s, want %s", tc.in, got, tc.want)
			}
			again, err := Canonicalize(got)
			if err != nil || string(again) != string(got) {
				t.Errorf("not idempotent: %s, %v", again, err)
			}
		})
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	for _, in := range []string{
		`1.5`, `{"a":1.0}`, `[1e3]`, `-0`, `{"a":1,"a":2}`, `{"a":1} {}`, "\"\xff\"", `{"a":`, ``, `[1,]`, `{'a':1}`,
		strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1),
	} {
		if _, err := Canonicalize([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Canonicalize(%.20q) = %v, want ErrInvalid", in, err)
		}
	}
}
