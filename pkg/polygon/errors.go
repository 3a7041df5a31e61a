package polygon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/retry"
)

// Sentinel errors, for errors.Is. Every error DailyBars returns is also
// classified with pkg/retry: test retry.IsPermanent to decide whether a
// message is worth handing back to the queue.
var (
	// ErrUnauthorized: the key is missing (400), unknown (401), or not
	// entitled to the data (403 NOT_AUTHORIZED). Permanent. The first two
	// also wrap marketdata.ErrKeyRefused, the third marketdata.ErrNotEntitled.
	ErrUnauthorized = errors.New("polygon: API key missing, unknown or not entitled")
	// ErrNoData: Polygon answered 200 with no bars (resultsCount 0, results
	// absent or null): an unknown ticker or one with no trades. Permanent.
	ErrNoData = errors.New("polygon: no bars")
	// ErrRateLimited: Polygon answered 429. Transient.
	ErrRateLimited = errors.New("polygon: rate limited")
)

// maxErrorText bounds the API's error text quoted in an error message.
const maxErrorText = 200

// APIError is an HTTP answer other than a usable 200: the status and what
// Polygon said about it, already sanitized (one line, bounded, no key).
type APIError struct {
	// StatusCode is the HTTP status (200 for an OK answer carrying an error status).
	StatusCode int
	// Status is the body's status field (ERROR, NOT_AUTHORIZED, ...), if any.
	Status string
	// Text is the body's error or message field, or the start of a non-JSON body.
	Text string
	// RequestID is the body's request_id, for Polygon's support.
	RequestID string
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration

	sentinel error
	// access is marketdata.ErrKeyRefused or marketdata.ErrNotEntitled for a
	// refused key or plan, marketdata.ErrOutsidePlan for a date before the
	// plan's history, so the use cases can tell them apart without knowing
	// this package.
	access error
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
	if e.Status != "" {
		fmt.Fprintf(&b, " %s", e.Status)
	}
	if e.Text != "" {
		fmt.Fprintf(&b, ": %s", e.Text)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request_id %s)", e.RequestID)
	}
	return b.String()
}

// Unwrap returns the sentinels the status maps to: ErrUnauthorized with
// marketdata.ErrKeyRefused (400 missing key, 401) or
// marketdata.ErrNotEntitled (403), marketdata.ErrOutsidePlan alone (403 for
// a date before the plan's history), ErrRateLimited (429), or none.
func (e *APIError) Unwrap() []error {
	var out []error
	for _, s := range []error{e.sentinel, e.access} {
		if s != nil {
			out = append(out, s)
		}
	}
	return out
}

// errorBody is the shape of Polygon's error answers: the text is in "error"
// (400, 401, 429) or "message" (403 NOT_AUTHORIZED, 404).
type errorBody struct {
	Status    string `json:"status"`
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

// classifyStatus turns a non-200 answer into a classified error: 400, 401
// and 403 are key problems and other 4xx are our mistakes (permanent); 408,
// 429 and 5xx are worth another try (transient).
func classifyStatus(code int, h http.Header, body []byte, now time.Time, redact func(string) string) error {
	e := &APIError{StatusCode: code}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil {
		e.Status = oneLine(redact(eb.Status), 40)
		e.RequestID = oneLine(redact(eb.RequestID), 80)
		text := eb.Error
		if text == "" {
			text = eb.Message
		}
		e.Text = oneLine(redact(text), maxErrorText)
	} else {
		e.Text = oneLine(redact(string(body)), maxErrorText)
	}
	switch {
	case code == http.StatusBadRequest:
		// Polygon answers a missing key with 400; other 400s are bad
		// parameters, our mistake either way.
		if strings.Contains(strings.ToLower(e.Text), "api key") {
			e.sentinel, e.access = ErrUnauthorized, marketdata.ErrKeyRefused
		}
		return retry.Permanent(e)
	case code == http.StatusUnauthorized:
		e.sentinel, e.access = ErrUnauthorized, marketdata.ErrKeyRefused
		return retry.Permanent(e)
	case code == http.StatusForbidden && strings.Contains(strings.ToLower(e.Text), "timeframe"):
		// "Your plan doesn't include this data timeframe": the dates asked
		// for are before the plan's history; the key and the plan are fine.
		e.access = marketdata.ErrOutsidePlan
		return retry.Permanent(e)
	case code == http.StatusForbidden:
		e.sentinel, e.access = ErrUnauthorized, marketdata.ErrNotEntitled
		return retry.Permanent(e)
	case code == http.StatusTooManyRequests:
		e.sentinel = ErrRateLimited
		e.RetryAfter = parseRetryAfter(h.Get("Retry-After"), now)
		return retry.Transient(e, e.RetryAfter)
	case code == http.StatusRequestTimeout, code >= 500:
		e.RetryAfter = parseRetryAfter(h.Get("Retry-After"), now)
		return retry.Transient(e, e.RetryAfter)
	case code >= 400:
		return retry.Permanent(e)
	default:
		// 1xx or a 3xx we did not follow: not an answer we understand, and
		// not one that another try would change.
		return retry.Permanent(e)
	}
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date; 0 when
// absent, malformed or in the past. The retry policy caps it.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// oneLine makes untrusted text safe to put in an error or a log line:
// control characters (newlines included) become spaces, runs of spaces one,
// and the result is cut to at most n runes.
func oneLine(s string, n int) string {
	var b strings.Builder
	space := false
	runes := 0
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == unicode.ReplacementChar {
			if !space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		if runes == n {
			b.WriteString("…")
			break
		}
		space = false
		b.WriteRune(r)
		runes++
	}
	return strings.TrimRight(b.String(), " ")
}

// redactor returns a function that replaces key in text. Keys shorter than
// 4 characters are not searched for (they would garble every message, and
// no real key is that short).
func redactor(key string) func(string) string {
	if len(key) < 4 {
		return func(s string) string { return s }
	}
	return func(s string) string { return strings.ReplaceAll(s, key, "[REDACTED]") }
}
