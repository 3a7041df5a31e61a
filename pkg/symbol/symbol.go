// Package symbol normalizes and validates ticker symbols. It is the one
// validator used everywhere a symbol enters the system: shared-table items,
// queue messages, manual events, CLI flags and seed files, the stored rows and
// bars, and LLM answers.
//
// Symbols are spelled as Polygon.io spells them: share classes with a dot
// (BRK.B). The spellings other systems use for a share class — BRK-B, BRK/B,
// "BRK B" — normalize to that one, so a holding entered either way finds its
// market data.
package symbol

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxLen is the longest accepted symbol.
const MaxLen = 10

// ClassSeparator is how a share class is written: BRK.B.
const ClassSeparator = '.'

// ErrInvalid is wrapped by every rejection, so callers can test with errors.Is.
var ErrInvalid = errors.New("invalid ticker symbol")

// Error is a rejection: the input (quoted safely by Error) and why. Reason
// alone reads well after the caller's own description of the field, as in
// `portfolios[1].positions[0].ticker "BRK-": trailing separator`.
type Error struct {
	// Input is the raw value rejected.
	Input string
	// Reason says what is wrong, in a few words.
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%v %s: %s", ErrInvalid, Quote(e.Input), e.Reason) }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *Error) Unwrap() error { return ErrInvalid }

// Reason returns why err rejected a symbol (the reason of an *Error), or
// err's text for any other error.
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return err.Error()
}

// isSeparator reports whether r writes a share class: '.', '-', '/' or a
// single space.
func isSeparator(r rune) bool { return r == '.' || r == '-' || r == '/' || r == ' ' }

// Normalize trims surrounding spaces and tabs, upper-cases, and validates s:
// 1–10 characters of A–Z and 0–9 starting with a letter, with share classes
// separated by one '.', '-', '/' or space, all written '.' ("brk-b", "BRK/B"
// and "BRK B" become "BRK.B"). Anything else is rejected with an *Error whose
// reason says why: a trailing separator ("BRK-", "BRK."), two in a row, a
// character outside that set.
//
// Only spaces and tabs are trimmed: a symbol carrying a newline or other
// control character is rejected, since it is more likely an injection attempt
// or a corrupted item than a symbol.
func Normalize(s string) (string, error) {
	reject := func(reason string) (string, error) { return "", &Error{Input: s, Reason: reason} }
	t := strings.Trim(s, " \t")
	if t == "" {
		return reject("empty")
	}
	if len(t) > MaxLen {
		return reject(fmt.Sprintf("longer than %d characters", MaxLen))
	}
	// Validate before upper-casing, and upper-case ASCII only: Unicode case
	// mapping turns some non-ASCII letters into ASCII ones ("ı" → "I",
	// "ſ" → "S"), which would let a look-alike through as a real symbol.
	u := make([]byte, 0, len(t))
	prevSep := false
	for i, r := range t {
		switch {
		case r >= 'A' && r <= 'Z':
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		case i == 0:
			return reject("must start with a letter")
		case r >= '0' && r <= '9':
		case isSeparator(r):
			if prevSep {
				return reject("two separators in a row")
			}
			prevSep = true
			u = append(u, ClassSeparator)
			continue
		default:
			return reject(fmt.Sprintf("character %q not allowed (A-Z, 0-9, and '.', '-', '/' or a space before a share class)", r))
		}
		prevSep = false
		u = append(u, byte(r))
	}
	if prevSep {
		return reject("trailing separator")
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
