// Package symbol normalizes and validates ticker symbols. It is the one
// validator used everywhere a symbol enters the system: shared-table items,
// queue messages, manual events, CLI flags and LLM answers.
package symbol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxLen is the longest accepted symbol.
const MaxLen = 10

// ErrInvalid is wrapped by every rejection, so callers can test with errors.Is.
var ErrInvalid = errors.New("invalid ticker symbol")

// Normalize trims surrounding spaces and tabs, upper-cases, and validates s:
// 1–10 characters of A–Z, 0–9, '.' and '-', starting with a letter.
// "aapl" becomes "AAPL"; "BRK.B" is valid. Anything else is rejected with a
// reason that quotes the input safely.
//
// Only spaces and tabs are trimmed: a symbol carrying a newline or other
// control character is rejected, since it is more likely an injection attempt
// or a corrupted item than a symbol.
func Normalize(s string) (string, error) {
	t := strings.Trim(s, " \t")
	if t == "" {
		return "", fmt.Errorf("%w %q: empty", ErrInvalid, s)
	}
	if len(t) > MaxLen {
		return "", fmt.Errorf("%w %.20q: longer than %d characters", ErrInvalid, s, MaxLen)
	}
	// Validate before upper-casing, and upper-case ASCII only: Unicode case
	// mapping turns some non-ASCII letters into ASCII ones ("ı" → "I",
	// "ſ" → "S"), which would let a look-alike through as a real symbol.
	u := make([]byte, len(t))
	for i, r := range t {
		switch {
		case r >= 'A' && r <= 'Z':
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		case i == 0:
			return "", fmt.Errorf("%w %q: must start with a letter", ErrInvalid, s)
		case r >= '0' && r <= '9', r == '.', r == '-':
		default:
			return "", fmt.Errorf("%w %q: character %q not allowed (A-Z, 0-9, '.', '-')", ErrInvalid, s, r)
		}
		u[i] = byte(r)
	}
	return string(u), nil
}

// Valid reports whether s is already a normalized, valid symbol.
func Valid(s string) bool {
	n, err := Normalize(s)
	return err == nil && n == s
}

// maxQuoted bounds how much of a rejected value is copied into a log line.
const maxQuoted = 40

// Quote returns a rejected raw value quoted with Go escapes and shortened to
// 40 bytes of input, so control characters and long values can neither forge
// nor flood the log lines that report it.
func Quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "…"
	}
	return strconv.Quote(s)
}
