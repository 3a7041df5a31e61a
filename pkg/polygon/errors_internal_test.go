package polygon

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/retry"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 21, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{"99999999999", 24 * time.Hour}, // bounded before the policy's own cap
		{"Fri, 27 Nov 2026 21:30:45 GMT", 45 * time.Second},
		{"Fri, 27 Nov 2026 21:29:00 GMT", 0}, // in the past
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"Unknown API Key", 200, "Unknown API Key"},
		{"a\nb\r\n\tc  d", 200, "a b c d"},
		{"  lead and trail \n", 200, "lead and trail"},
		{"abcdef", 3, "abc…"},
		{"bad \x00\x1b[31m escape", 200, "bad [31m escape"},
		{"in\xffvalid", 200, "in valid"},
	} {
		if got := oneLine(tc.in, tc.n); got != tc.want {
			t.Errorf("oneLine(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestClassifyStatus(t *testing.T) {
	now := time.Now()
	redact := redactor("pk_secret_key")
	for _, tc := range []struct {
		code      int
		body      string
		permanent bool
		sentinel  error
		text      string
	}{
		{400, `{"status":"ERROR","error":"API Key was not provided"}`, true, ErrUnauthorized, "API Key was not provided"},
		{400, `{"status":"ERROR","error":"Could not parse"}`, true, nil, "Could not parse"},
		{401, `{"status":"ERROR","error":"Unknown API Key"}`, true, ErrUnauthorized, "Unknown API Key"},
		{403, `{"status":"NOT_AUTHORIZED","message":"You are not entitled to this data."}`, true, ErrUnauthorized, "You are not entitled"},
		{403, `{"status":"NOT_AUTHORIZED","message":"Your plan doesn't include this data timeframe."}`, true, marketdata.ErrOutsidePlan, "data timeframe"},
		{404, `{"status":"NOT_FOUND","message":"Not Found"}`, true, nil, "Not Found"},
		{408, ``, false, nil, "HTTP 408"},
		{429, `{"status":"ERROR","error":"You've exceeded the maximum requests per minute"}`, false, ErrRateLimited, "exceeded"},
		{500, `not json at all`, false, nil, "not json at all"},
		{504, `{"error":"key pk_secret_key leaked"}`, false, nil, "key [REDACTED] leaked"},
		{302, ``, true, nil, "HTTP 302"},
	} {
		err := classifyStatus(tc.code, http.Header{}, []byte(tc.body), now, redact)
		if retry.IsPermanent(err) != tc.permanent {
			t.Errorf("%d: permanent %v, want %v", tc.code, retry.IsPermanent(err), tc.permanent)
		}
		for _, s := range []error{ErrUnauthorized, ErrRateLimited, ErrNoData, marketdata.ErrOutsidePlan} {
			if errors.Is(err, s) != (s == tc.sentinel) {
				t.Errorf("%d: errors.Is(%v) = %v", tc.code, s, errors.Is(err, s))
			}
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != tc.code || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%d: %v, want an APIError saying %q", tc.code, err, tc.text)
		}
	}
	h := http.Header{"Retry-After": {"9"}}
	var re *retry.Error
	if err := classifyStatus(429, h, nil, now, redact); !errors.As(err, &re) || re.RetryAfter != 9*time.Second {
		t.Errorf("429 Retry-After 9: %#v", err)
	}
}

func TestNextURL(t *testing.T) {
	base, _ := url.Parse("https://api.polygon.io")
	c := &Client{base: base}
	for _, tc := range []struct {
		in, want string // want "" means refused
	}{
		{"https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/day/1/2?cursor=abc", "https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/day/1/2?cursor=abc"},
		{"https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/day/1/2?cursor=abc&apiKey=SECRET", "https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/day/1/2?cursor=abc"},
		{"https://API.POLYGON.IO/v2/x?APIKEY=SECRET&apikey=S2", "https://API.POLYGON.IO/v2/x"},
		{"/v2/aggs/ticker/AAPL/range/1/day/1/2?cursor=abc", "https://api.polygon.io/v2/aggs/ticker/AAPL/range/1/day/1/2?cursor=abc"},
		{"https://user:pw@api.polygon.io/v2/x#frag", "https://api.polygon.io/v2/x"},
		{"http://api.polygon.io/v2/x", ""},       // downgraded to clear text
		{"https://api.massive.com/v2/x", ""},     // another host
		{"https://api.polygon.io.evil/v2/x", ""}, // look-alike
		{"//evil.example/v2/x", ""},              // scheme-relative
		{"https://api.polygon.io:8443/v2/x", ""}, // another port
		{"%zz", ""},
	} {
		u, err := c.nextURL(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("nextURL(%q) = %s, want refused", tc.in, u)
		case tc.want == "" && !retry.IsPermanent(err):
			t.Errorf("nextURL(%q): %v, want a permanent refusal", tc.in, err)
		case tc.want != "" && (err != nil || u.String() != tc.want):
			t.Errorf("nextURL(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("nextURL(%q) error quotes the key: %v", tc.in, err)
		}
	}
}

// FuzzErrorBody feeds untrusted error bodies to the classifier: whatever the
// body, the error is one bounded line that never carries the key.
func FuzzErrorBody(f *testing.F) {
	f.Add(401, `{"status":"ERROR","error":"Unknown API Key"}`)
	f.Add(403, `{"status":"NOT_AUTHORIZED","message":"You are not entitled to this data."}`)
	f.Add(429, `{"status":"ERROR","error":"pk_fuzz_key\n\u2028 x"}`)
	f.Add(502, "<html>\n<title>502 Bad Gateway</title>\n</html>")
	f.Add(500, "\xff\xfe\x00pk_fuzz_key")
	const key = "pk_fuzz_key"
	f.Fuzz(func(t *testing.T, code int, body string) {
		if code < 100 || code > 599 || code == 200 {
			return
		}
		err := classifyStatus(code, http.Header{"Retry-After": {body}}, []byte(body), time.Now(), redactor(key))
		msg := err.Error()
		if strings.ContainsAny(msg, "\r\n") || strings.Contains(msg, key) || !utf8.ValidString(msg) {
			t.Fatalf("unsafe error %q", msg)
		}
		if n := utf8.RuneCountInString(msg); n > 40+maxErrorText+120 {
			t.Fatalf("error of %d runes", n)
		}
	})
}
