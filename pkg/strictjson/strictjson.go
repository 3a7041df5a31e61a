// Package strictjson decodes exactly one JSON value with unknown fields
// refused and nothing after it: the one strict decoding of the service's
// queue messages, the seed file and the analysis model's answers. It imports
// only the standard library, so that pure packages (the analysis core, the
// analysis queue's schema) can use it.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// ErrTrailingData means the data held more than one JSON value.
var ErrTrailingData = errors.New("data after the JSON value")

// maxErrorText bounds a decoding error's text, so that it never quotes a
// long stretch of untrusted input.
const maxErrorText = 120

// Decode decodes data, exactly one JSON value, into v: unknown fields are
// refused, and anything after the value is ErrTrailingData. A decoding
// error's text is shortened to 120 bytes.
func Decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New(Clip(err.Error()))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ErrTrailingData
	}
	return nil
}

// Clip shortens an error text quoting untrusted input to 120 bytes (at a
// character boundary), marking the cut with "…".
func Clip(s string) string {
	if len(s) <= maxErrorText {
		return s
	}
	cut := maxErrorText
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
