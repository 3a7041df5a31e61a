package polygon

import (
	"encoding/json"
	"fmt"

	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/symbol"
)

// This file decodes one page of GET /v3/reference/splits. Pure: no I/O.

// SplitsPage is one page of the splits answer, as on the wire.
type SplitsPage struct {
	Status    string        `json:"status"`
	RequestID string        `json:"request_id"`
	NextURL   string        `json:"next_url"`
	Results   []*SplitEntry `json:"results"`
}

// SplitEntry is one split as Polygon lists it: split_to new shares for every
// split_from old ones (4-for-1: from 1, to 4).
type SplitEntry struct {
	ID            string   `json:"id"`
	Ticker        *string  `json:"ticker"`
	ExecutionDate *string  `json:"execution_date"`
	SplitFrom     *float64 `json:"split_from"`
	SplitTo       *float64 `json:"split_to"`
}

type splitsWire struct {
	SplitsPage
	Results []json.RawMessage `json:"results"`
	Error   string            `json:"error"`
	Message string            `json:"message"`
}

// DecodeSplits decodes one page. Status OK is required (any other is an
// error wrapping ErrAggregatesStatus); an entry that cannot be read is kept
// as nil and skipped by Splits.
func DecodeSplits(data []byte) (*SplitsPage, error) {
	var w splitsWire
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("decode polygon splits: %w", err)
	}
	if w.Status != "OK" {
		text := w.Error
		if text == "" {
			text = w.Message
		}
		return nil, fmt.Errorf("%w %.40q: %.*q", ErrAggregatesStatus, w.Status, maxQuoted, text)
	}
	p := w.SplitsPage
	p.Results = make([]*SplitEntry, len(w.Results))
	for i, raw := range w.Results {
		var e SplitEntry
		if json.Unmarshal(raw, &e) == nil && string(raw) != "null" {
			p.Results[i] = &e
		}
	}
	return &p, nil
}

// Splits returns the usable entries and the skipped ones with why.
func (p *SplitsPage) Splits() ([]marketdata.Split, []marketdata.SkippedRow) {
	var out []marketdata.Split
	var bad []marketdata.SkippedRow
	for _, e := range p.Results {
		if e == nil || e.Ticker == nil || e.ExecutionDate == nil || e.SplitFrom == nil || e.SplitTo == nil {
			bad = append(bad, marketdata.SkippedRow{Reason: "incomplete entry (ticker, execution_date, split_from, split_to)"})
			continue
		}
		t := *e.Ticker
		if n, err := symbol.Normalize(t); err != nil || n != t {
			bad = append(bad, marketdata.SkippedRow{Ticker: t, Reason: "not a normalized symbol"})
			continue
		}
		s := marketdata.Split{Ticker: t, ExecutionDate: *e.ExecutionDate, From: *e.SplitFrom, To: *e.SplitTo, ID: oneLine(e.ID, 100)}
		if err := marketdata.ValidateSplit(s); err != nil {
			bad = append(bad, marketdata.SkippedRow{Ticker: t, Reason: err.Error()})
			continue
		}
		out = append(out, s)
	}
	return out, bad
}
