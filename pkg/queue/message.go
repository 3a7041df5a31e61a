// Package queue is the ticker queue's messages between processTickers and
// processTicker: the versioned schema — per night, one day message at the
// head of each message group, then one message per ticker; the fill messages
// a day message queues for the sessions the stored history lacks — their
// FIFO group and de-duplication ids, and the strict decoding every queue of
// the service uses. Pure: the SQS adapters that send and release them are
// package sqsqueue.
package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/symbol"
)

// Version is the schema version this code writes; Version1 is still read.
const (
	Version  = 2
	Version1 = 1
)

// The kinds of a v2 message.
const (
	// KindDay asks for one market day: the grouped-daily call, merged into
	// the stored history of the tickers it carries, and the splits check.
	KindDay = "day"
	// KindTicker asks for one ticker's row of a trading day.
	KindTicker = "ticker"
	// KindFill asks for one past session of the whole market (one grouped
	// call), missing from the stored history a night's window needs.
	KindFill = "fill"
)

// Size bounds. SQS accepts bodies of up to 256 KiB; a ticker message is
// about 150 bytes, so anything much larger is not one of ours. A day message
// carries its tickers: MaxDayTickers of at most 13 bytes each ("ABCDEFGHIJ",
// quoted, with a comma) is 195 KB, within SQS's limit with room for the rest.
const (
	MaxMessageBytes       = 256 * 1024
	MaxTickerMessageBytes = 4096
	MaxDayTickers         = 15000
	// MaxParts bounds the parts of one day's message of a group.
	MaxParts = 1000
)

// maxRunIDLen bounds the run id (a Lambda request id or 32 hex digits) and
// the group id.
const maxRunIDLen = 128

// ErrPoison is wrapped by every Decode error: the message can never be
// processed, so the consumer logs, counts and acknowledges it.
var ErrPoison = errors.New("poison message")

// MaxAttempt bounds the attempt counter accepted by Decode: far above any
// sensible MaxAttempts, so that a larger value can only be forged.
const MaxAttempt = 100

// Message is one message of the ticker queue. JSON, versioned:
//
//	v2 ticker: {"v":2,"kind":"ticker","ticker":"AAPL","date":"2026-11-25","runId":"…","enqueuedAt":"…"}
//	v2 day:    {"v":2,"kind":"day","date":"2026-11-25","tickers":["AAPL",…],"group":"tickers","part":1,"parts":1,"runId":"…","enqueuedAt":"…"}
//	v2 fill:   {"v":2,"kind":"fill","date":"2026-03-02","night":"2026-11-25","group":"tickers","part":17,"parts":253,"runId":"…","enqueuedAt":"…"}
//	v1 ticker: {"v":1,"ticker":"AAPL","runId":"…","enqueuedAt":"…"} (the trading day is the last completed one when it is read)
//
// plus "attempt":n when processTicker re-queued it (omitted when 0).
// Anything else is poison.
type Message struct {
	// V is the schema version: Version, or Version1 for a message written
	// before the day messages existed.
	V int `json:"v"`
	// Kind is KindDay, KindTicker or KindFill ("" in v1: a ticker message).
	Kind string `json:"kind,omitempty"`
	// Ticker is a normalized symbol (package symbol); ticker messages only.
	Ticker string `json:"ticker,omitempty"`
	// Date is the trading day, YYYY-MM-DD ("" in v1); for a fill message,
	// the session to fetch.
	Date string `json:"date,omitempty"`
	// Night is, for a fill message, the trading day whose window needs the
	// session.
	Night string `json:"night,omitempty"`
	// Tickers are the held tickers a day message is for, normalized, sorted
	// and unique (at most MaxDayTickers).
	Tickers []string `json:"tickers,omitempty"`
	// Group is the message group a day message heads; Part of Parts
	// (from 1) when the group's tickers did not fit one message. A fill
	// message's Group is its message group, Part of Parts its place in the
	// night's fill (1 is the latest session missing).
	Group string `json:"group,omitempty"`
	Part  int    `json:"part,omitempty"`
	Parts int    `json:"parts,omitempty"`
	// RunID identifies the processTickers run that queued the message.
	RunID string `json:"runId"`
	// EnqueuedAt is when the message was built.
	EnqueuedAt time.Time `json:"enqueuedAt"`
	// Attempt counts the attempts that failed transiently before this copy
	// was queued: 0 as processTickers sends it, n after processTicker
	// re-queued it n times (pipeline.ProcessTicker's Requeuer).
	Attempt int `json:"attempt,omitempty"`
}

// New returns a v1 ticker message, as the producer wrote before v2: the
// consumer reads the trading day from its clock. Kept for messages in flight
// during an upgrade and for tests of that path.
func New(ticker, runID string, enqueuedAt time.Time) Message {
	return Message{V: Version1, Ticker: ticker, RunID: runID, EnqueuedAt: enqueuedAt.UTC()}
}

// NewTicker returns a v2 message asking for ticker's row of the trading day
// date; ticker must be normalized.
func NewTicker(ticker, date, runID string, enqueuedAt time.Time) Message {
	return Message{V: Version, Kind: KindTicker, Ticker: ticker, Date: date, RunID: runID, EnqueuedAt: enqueuedAt.UTC()}
}

// NewDay returns a v2 day message for the tickers of message group group
// (part of parts, from 1); tickers must be normalized, sorted and unique.
func NewDay(date string, tickers []string, group string, part, parts int, runID string, enqueuedAt time.Time) Message {
	return Message{V: Version, Kind: KindDay, Date: date, Tickers: tickers, Group: group, Part: part, Parts: parts,
		RunID: runID, EnqueuedAt: enqueuedAt.UTC()}
}

// NewFill returns a v2 fill message: session date, the part-th of parts
// missing from the window of night's trading day, in message group group.
func NewFill(date, night, group string, part, parts int, runID string, enqueuedAt time.Time) Message {
	return Message{V: Version, Kind: KindFill, Date: date, Night: night, Group: group, Part: part, Parts: parts,
		RunID: runID, EnqueuedAt: enqueuedAt.UTC()}
}

// IsDay reports whether m is a day message.
func (m Message) IsDay() bool { return m.Kind == KindDay }

// IsFill reports whether m is a fill message.
func (m Message) IsFill() bool { return m.Kind == KindFill }

// IsMarket reports whether m is about the whole market (a day or a fill
// message), not one ticker.
func (m Message) IsMarket() bool { return m.IsDay() || m.IsFill() }

// PartKey names a day message's part for the day's state: the same
// message redelivered, or re-queued, has the same key.
func (m Message) PartKey() string {
	return fmt.Sprintf("%s/%s/%d-of-%d", m.RunID, m.Group, m.Part, m.Parts)
}

// Label names the message in logs and failures: its ticker, "day DATE" or
// "fill DATE".
func (m Message) Label() string {
	if m.IsFill() {
		return "fill " + m.Date
	}
	if m.IsDay() {
		if m.Parts > 1 {
			return fmt.Sprintf("day %s (%s, part %d of %d)", m.Date, m.Group, m.Part, m.Parts)
		}
		return "day " + m.Date
	}
	return m.Ticker
}

// Encode returns the JSON body of m.
func (m Message) Encode() (string, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode message for %s: %w", m.Label(), err)
	}
	return string(b), nil
}

// Decode parses and validates a message body. Anything that is not exactly
// a v2 ticker or day message, or a v1 ticker message, is an error wrapping
// ErrPoison whose text quotes nothing longer than a short prefix of the
// input: unknown fields, trailing data, a second document, a field of the
// other kind, an invalid or (v2) non-normalized symbol, a date that is not a
// trading day, a missing run id or time, an attempt outside 0..MaxAttempt, a
// ticker message above MaxTickerMessageBytes.
//
// A v1 ticker is normalized rather than refused: the producer of v1 spelled
// share classes with a hyphen (BRK-B), which now normalizes to BRK.B.
func Decode(data []byte) (Message, error) {
	if len(data) > MaxMessageBytes {
		return Message{}, fmt.Errorf("%w: %d bytes, more than %d", ErrPoison, len(data), MaxMessageBytes)
	}
	var raw struct {
		V          *int     `json:"v"`
		Kind       *string  `json:"kind"`
		Ticker     *string  `json:"ticker"`
		Date       *string  `json:"date"`
		Night      *string  `json:"night"`
		Tickers    []string `json:"tickers"`
		Group      *string  `json:"group"`
		Part       *int     `json:"part"`
		Parts      *int     `json:"parts"`
		RunID      *string  `json:"runId"`
		EnqueuedAt *string  `json:"enqueuedAt"`
		Attempt    *int     `json:"attempt"`
	}
	if err := DecodeObject(data, &raw); errors.Is(err, ErrTrailingData) {
		return Message{}, fmt.Errorf("%w: data after the message object", ErrPoison)
	} else if err != nil {
		return Message{}, fmt.Errorf("%w: not a JSON message object: %s", ErrPoison, err)
	}
	poison := func(format string, args ...any) (Message, error) {
		return Message{}, fmt.Errorf("%w: "+format, append([]any{ErrPoison}, args...)...)
	}
	switch {
	case raw.V == nil:
		return poison("no schema version \"v\"")
	case *raw.V != Version && *raw.V != Version1:
		return poison("schema version %d, want %d or %d", *raw.V, Version, Version1)
	case raw.RunID == nil || *raw.RunID == "":
		return poison("no \"runId\"")
	case len(*raw.RunID) > maxRunIDLen:
		return poison("\"runId\" longer than %d bytes", maxRunIDLen)
	case raw.EnqueuedAt == nil:
		return poison("no \"enqueuedAt\"")
	case raw.Attempt != nil && (*raw.Attempt < 0 || *raw.Attempt > MaxAttempt):
		return poison("\"attempt\" %d outside 0..%d", *raw.Attempt, MaxAttempt)
	}
	at, err := time.Parse(time.RFC3339Nano, *raw.EnqueuedAt)
	if err != nil {
		return poison("\"enqueuedAt\" %.40q is not an RFC 3339 time", *raw.EnqueuedAt)
	}
	if y := at.UTC().Year(); y < 1 || y > 9999 {
		// JSON cannot encode it again, and processTicker re-encodes a
		// message it re-queues.
		return poison("\"enqueuedAt\" %.40q is outside years 1..9999 in UTC", *raw.EnqueuedAt)
	}
	m := Message{V: *raw.V, RunID: *raw.RunID, EnqueuedAt: at.UTC()}
	if raw.Attempt != nil {
		m.Attempt = *raw.Attempt
	}
	dayFields := raw.Tickers != nil || raw.Group != nil || raw.Part != nil || raw.Parts != nil
	if m.V == Version1 {
		switch {
		case raw.Kind != nil || raw.Date != nil || raw.Night != nil || dayFields:
			return poison("v1 has no \"kind\", \"date\", \"night\", \"tickers\", \"group\", \"part\" or \"parts\"")
		case raw.Ticker == nil:
			return poison("no \"ticker\"")
		case len(data) > MaxTickerMessageBytes:
			return poison("%d bytes, more than %d for a ticker message", len(data), MaxTickerMessageBytes)
		}
		t, err := symbol.Normalize(*raw.Ticker)
		if err != nil {
			return poison("%v", err)
		}
		m.Ticker = t
		return m, nil
	}
	if raw.Date == nil || !marketdata.IsTradingDay(*raw.Date) {
		return poison("\"date\" missing or not a trading day YYYY-MM-DD")
	}
	m.Date = *raw.Date
	kind := ""
	if raw.Kind != nil {
		kind = *raw.Kind
	}
	if raw.Night != nil && kind != KindFill {
		return poison("only a fill message has a \"night\"")
	}
	switch kind {
	case KindFill:
		switch {
		case raw.Ticker != nil || raw.Tickers != nil:
			return poison("a fill message has no \"ticker\" or \"tickers\"")
		case raw.Night == nil || !marketdata.IsTradingDay(*raw.Night) || *raw.Night < m.Date:
			return poison("\"night\" missing, not a trading day, or before \"date\"")
		case raw.Group == nil || *raw.Group == "" || len(*raw.Group) > maxRunIDLen:
			return poison("\"group\" missing or longer than %d bytes", maxRunIDLen)
		case raw.Parts == nil || raw.Part == nil || *raw.Parts < 1 || *raw.Parts > MaxParts || *raw.Part < 1 || *raw.Part > *raw.Parts:
			return poison("\"part\" and \"parts\" must satisfy 1 ≤ part ≤ parts ≤ %d", MaxParts)
		case len(data) > MaxTickerMessageBytes:
			return poison("%d bytes, more than %d for a fill message", len(data), MaxTickerMessageBytes)
		}
		m.Kind, m.Night, m.Group, m.Part, m.Parts = KindFill, *raw.Night, *raw.Group, *raw.Part, *raw.Parts
		return m, nil
	case KindTicker:
		switch {
		case dayFields:
			return poison("a ticker message has no \"tickers\", \"group\", \"part\" or \"parts\"")
		case raw.Ticker == nil:
			return poison("no \"ticker\"")
		case len(data) > MaxTickerMessageBytes:
			return poison("%d bytes, more than %d for a ticker message", len(data), MaxTickerMessageBytes)
		}
		t, err := strict(*raw.Ticker)
		if err != nil {
			return poison("%v", err)
		}
		m.Kind, m.Ticker = KindTicker, t
		return m, nil
	case KindDay:
		switch {
		case raw.Ticker != nil:
			return poison("a day message has no \"ticker\"")
		case len(raw.Tickers) == 0 || len(raw.Tickers) > MaxDayTickers:
			return poison("\"tickers\" must hold 1 to %d symbols", MaxDayTickers)
		case raw.Group == nil || *raw.Group == "" || len(*raw.Group) > maxRunIDLen:
			return poison("\"group\" missing or longer than %d bytes", maxRunIDLen)
		case raw.Parts == nil || raw.Part == nil || *raw.Parts < 1 || *raw.Parts > MaxParts || *raw.Part < 1 || *raw.Part > *raw.Parts:
			return poison("\"part\" and \"parts\" must satisfy 1 ≤ part ≤ parts ≤ %d", MaxParts)
		}
		for i, t := range raw.Tickers {
			if _, err := strict(t); err != nil {
				return poison("tickers[%d]: %v", i, err)
			}
			if i > 0 && raw.Tickers[i-1] >= t {
				return poison("\"tickers\" not sorted and unique at %d", i)
			}
		}
		m.Kind, m.Tickers, m.Group, m.Part, m.Parts = KindDay, slices.Clip(raw.Tickers), *raw.Group, *raw.Part, *raw.Parts
		return m, nil
	}
	return poison("\"kind\" %.20q, want %q, %q or %q", kind, KindDay, KindTicker, KindFill)
}

// strict validates a v2 symbol: the producer normalizes, so one that is
// not normalized was not written by it.
func strict(t string) (string, error) {
	n, err := symbol.Normalize(t)
	if err != nil {
		return "", err
	}
	if n != t {
		return "", fmt.Errorf("ticker %s is not normalized (want %q)", symbol.Quote(t), n)
	}
	return t, nil
}
