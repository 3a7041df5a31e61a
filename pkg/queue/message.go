// Package queue is the ticker queue between processTickers and processTicker:
// the versioned message schema (one message per ticker and run) and the SQS
// publisher that sends it in batches.
package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/zsmseven/backend/pkg/symbol"
)

// Version is the schema version this code writes and accepts.
const Version = 1

// MaxMessageBytes bounds a message body accepted by Decode. A v1 message is
// about 150 bytes; anything much larger is not one of ours.
const MaxMessageBytes = 4096

// maxRunIDLen bounds the run id (a Lambda request id or 32 hex digits).
const maxRunIDLen = 128

// ErrPoison is wrapped by every Decode error: the message can never be
// processed, so the consumer logs, counts and acknowledges it.
var ErrPoison = errors.New("poison message")

// MaxAttempt bounds the attempt counter accepted by Decode: far above any
// sensible MaxAttempts, so that a larger value can only be forged.
const MaxAttempt = 100

// Message asks processTicker to refresh one ticker. JSON:
// {"v":1,"ticker":"AAPL","runId":"…","enqueuedAt":"2026-11-27T02:30:00Z"},
// plus "attempt":n when processTicker re-queued it (omitted when 0).
type Message struct {
	// V is the schema version, always Version.
	V int `json:"v"`
	// Ticker is a normalized symbol (package symbol).
	Ticker string `json:"ticker"`
	// RunID identifies the processTickers run that queued the message.
	RunID string `json:"runId"`
	// EnqueuedAt is when the message was built.
	EnqueuedAt time.Time `json:"enqueuedAt"`
	// Attempt counts the attempts that failed transiently before this copy
	// was queued: 0 as processTickers sends it, n after processTicker
	// re-queued it n times (pipeline.ProcessTicker's Requeuer).
	Attempt int `json:"attempt,omitempty"`
}

// New returns a v1 message for a ticker that has already been normalized.
func New(ticker, runID string, enqueuedAt time.Time) Message {
	return Message{V: Version, Ticker: ticker, RunID: runID, EnqueuedAt: enqueuedAt.UTC()}
}

// Encode returns the JSON body of m.
func (m Message) Encode() (string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode message for %s: %w", m.Ticker, err)
	}
	return string(b), nil
}

// Decode parses and validates a message body. Anything that is not exactly a
// v1 message (unknown fields, trailing data, a second document, an invalid
// or non-normalized symbol, a missing run id or time, an attempt outside
// 0..MaxAttempt) is an error wrapping
// ErrPoison whose text quotes nothing longer than a short prefix of the input.
func Decode(data []byte) (Message, error) {
	if len(data) > MaxMessageBytes {
		return Message{}, fmt.Errorf("%w: %d bytes, more than %d", ErrPoison, len(data), MaxMessageBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var raw struct {
		V          *int    `json:"v"`
		Ticker     *string `json:"ticker"`
		RunID      *string `json:"runId"`
		EnqueuedAt *string `json:"enqueuedAt"`
		Attempt    *int    `json:"attempt"`
	}
	if err := dec.Decode(&raw); err != nil {
		return Message{}, fmt.Errorf("%w: not a JSON message object: %s", ErrPoison, clip(err.Error()))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Message{}, fmt.Errorf("%w: data after the message object", ErrPoison)
	}
	switch {
	case raw.V == nil:
		return Message{}, fmt.Errorf("%w: no schema version \"v\"", ErrPoison)
	case *raw.V != Version:
		return Message{}, fmt.Errorf("%w: schema version %d, want %d", ErrPoison, *raw.V, Version)
	case raw.Ticker == nil:
		return Message{}, fmt.Errorf("%w: no \"ticker\"", ErrPoison)
	case raw.RunID == nil || *raw.RunID == "":
		return Message{}, fmt.Errorf("%w: no \"runId\"", ErrPoison)
	case len(*raw.RunID) > maxRunIDLen:
		return Message{}, fmt.Errorf("%w: \"runId\" longer than %d bytes", ErrPoison, maxRunIDLen)
	case raw.EnqueuedAt == nil:
		return Message{}, fmt.Errorf("%w: no \"enqueuedAt\"", ErrPoison)
	case raw.Attempt != nil && (*raw.Attempt < 0 || *raw.Attempt > MaxAttempt):
		return Message{}, fmt.Errorf("%w: \"attempt\" %d outside 0..%d", ErrPoison, *raw.Attempt, MaxAttempt)
	}
	t, err := symbol.Normalize(*raw.Ticker)
	if err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrPoison, err)
	}
	if t != *raw.Ticker {
		// The producer normalizes; a message that is not normalized was not
		// written by it.
		return Message{}, fmt.Errorf("%w: ticker %q is not normalized (want %q)", ErrPoison, *raw.Ticker, t)
	}
	at, err := time.Parse(time.RFC3339Nano, *raw.EnqueuedAt)
	if err != nil {
		return Message{}, fmt.Errorf("%w: \"enqueuedAt\" %.40q is not an RFC 3339 time", ErrPoison, *raw.EnqueuedAt)
	}
	if y := at.UTC().Year(); y < 1 || y > 9999 {
		// JSON cannot encode it again, and processTicker re-encodes a
		// message it re-queues.
		return Message{}, fmt.Errorf("%w: \"enqueuedAt\" %.40q is outside years 1..9999 in UTC", ErrPoison, *raw.EnqueuedAt)
	}
	m := Message{V: Version, Ticker: t, RunID: *raw.RunID, EnqueuedAt: at.UTC()}
	if raw.Attempt != nil {
		m.Attempt = *raw.Attempt
	}
	return m, nil
}

// clip shortens a decoder error, which can quote an unknown field name of
// any length.
func clip(s string) string {
	const n = 120
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
