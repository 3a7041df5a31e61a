package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// ErrTrailingData means a body held more than one JSON value.
var ErrTrailingData = errors.New("data after the JSON value")

// DecodeObject decodes data, exactly one JSON value, into v: unknown fields
// are refused, and anything after the value is ErrTrailingData. A decoding
// error's text is shortened to 120 bytes, so that it never quotes a long
// stretch of untrusted input. Every message type of the service's queues is
// decoded with it.
func DecodeObject(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New(clip(err.Error()))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ErrTrailingData
	}
	return nil
}
