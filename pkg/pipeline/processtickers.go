// Package pipeline holds the two use cases of the ticker pipeline:
// processTickers (collect every symbol held in the shared portfolio tables
// and queue, for the last completed trading day, one day message at the head
// of each message group and one message per ticker) and processTicker (the
// day message makes the stored history of the whole market complete up to
// the day — one grouped call a session, the missing ones queued as fill
// messages — and reads the splits of a trailing window into the ledger; each
// ticker message computes the indicators from the ticker's stored bars
// adjusted on read, and stores one row per trading day). They depend only on
// the small interfaces of ports.go, typed in the domain's words; the
// DynamoDB, SQS and Polygon adapters are wired in pkg/app.
package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/symbol"
)

// MaxManualTickers bounds the tickers of a manual event.
const MaxManualTickers = 1000

// maxInvalidLogged bounds the log lines written for rejected symbols in one
// run; the count is always complete.
const maxInvalidLogged = 100

// ErrBadEvent is wrapped when the invocation event cannot be understood.
var ErrBadEvent = errors.New("bad processTickers event")

// Summary is the outcome of a processTickers run, returned to the caller
// and logged.
type Summary struct {
	RunID string `json:"runId"`
	// Mode is "scan" (the shared tables), "catch-up" (the shared tables,
	// queueing only what the night still lacks) or "manual" (the event's
	// tickers).
	Mode string `json:"mode"`
	// Date is the trading day queued: the last completed one.
	Date string `json:"date"`
	// ItemsScanned and Pages count what the scan read (0 in manual mode).
	ItemsScanned int `json:"itemsScanned"`
	Pages        int `json:"pages"`
	// SymbolsFound is the number of distinct valid symbols.
	SymbolsFound int `json:"symbolsFound"`
	// Queued is the number of ticker messages SQS accepted.
	Queued int `json:"queued"`
	// DayMessages is the number of day messages SQS accepted (one per
	// message group, more for a group above queue.MaxDayTickers; none in a
	// catch-up run when the day is already published or in fallback).
	DayMessages int `json:"dayMessages"`
	// AlreadyStored is the number of tickers a catch-up run did not queue:
	// their row of the day is stored.
	AlreadyStored int `json:"alreadyStored"`
	// DayStatus is the day's recorded state when a catch-up run began
	// (DayStored, DayNotPublished or DayFallback; "" when no night was
	// recorded).
	DayStatus string `json:"dayStatus,omitempty"`
	// Invalid is the number of symbols rejected by the validator.
	Invalid int `json:"invalid"`
	// Failed is the number of messages SQS did not accept.
	Failed int `json:"failed"`
}

// ProcessTickers is the processTickers use case.
type ProcessTickers struct {
	Source    PortfolioSource
	Publisher Publisher
	// Nights and Rows serve the catch-up run ({"catchUp":true}): what the
	// night still lacks. Without them a catch-up event is refused.
	Nights Nights
	Rows   RowIndex
	// Groups is the number of FIFO message groups (one day message heads
	// each); values below 1 mean 1.
	Groups int
	// Metrics receives deploy.TickersQueued and deploy.InvalidSymbols and is
	// flushed at the end of each run; nil records nothing.
	Metrics *metrics.Recorder
	// Logger is the JSON logger (package logging); nil discards.
	Logger *slog.Logger
	// Now is the clock: it stamps the messages and decides the trading day
	// (the last completed one); nil is time.Now.
	Now func() time.Time
	// RunID names a run; nil uses RunID.
	RunID func(ctx context.Context) string
}

// RunID is logging.RunID: the Lambda request id, else a random one.
func RunID(ctx context.Context) string { return logging.RunID(ctx) }

// Event is a parsed processTickers event.
type Event struct {
	// Tickers, when set (Manual), are the tickers asked for.
	Tickers []string
	Manual  bool
	// CatchUp asks for the catch-up run: queue the day message again if the
	// day is not published yet, and the tickers whose row of the day is not
	// stored.
	CatchUp bool
}

// ParseEvent reads a processTickers event. {"tickers":[...]} asks for just
// those tickers (manual is true); {"catchUp":true} for the catch-up run;
// any other JSON value — the Scheduler's event, {}, null, or nothing at all
// — asks for a full scan. Malformed JSON, a "tickers" that is not a
// non-empty list of strings, or a "catchUp" that is not a boolean, is an
// error.
func ParseEvent(event []byte) (Event, error) {
	event = bytes.TrimSpace(event)
	if len(event) == 0 {
		return Event{}, nil
	}
	if !json.Valid(event) {
		return Event{}, fmt.Errorf("%w: not valid JSON (want {}, {\"catchUp\":true} or {\"tickers\":[\"AAPL\",...]})", ErrBadEvent)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(event, &obj); err != nil {
		return Event{}, nil // valid JSON but not an object: a scheduled run
	}
	var ev Event
	if raw, ok := obj["catchUp"]; ok {
		if err := json.Unmarshal(raw, &ev.CatchUp); err != nil {
			return Event{}, fmt.Errorf("%w: \"catchUp\" must be true or false", ErrBadEvent)
		}
	}
	raw, ok := obj["tickers"]
	if !ok {
		return ev, nil
	}
	ev.Manual = true
	if ev.CatchUp {
		return ev, fmt.Errorf("%w: \"tickers\" and \"catchUp\" together", ErrBadEvent)
	}
	if err := json.Unmarshal(raw, &ev.Tickers); err != nil {
		return ev, fmt.Errorf("%w: \"tickers\" must be a list of strings", ErrBadEvent)
	}
	switch {
	case len(ev.Tickers) == 0:
		return ev, fmt.Errorf("%w: \"tickers\" is empty", ErrBadEvent)
	case len(ev.Tickers) > MaxManualTickers:
		return ev, fmt.Errorf("%w: %d tickers, at most %d", ErrBadEvent, len(ev.Tickers), MaxManualTickers)
	}
	return ev, nil
}

// Handle runs processTickers for one invocation event: for the last
// completed trading day D at its clock, one day message per message group
// (the group's held tickers, split into parts above queue.MaxDayTickers),
// queued first, then one message per ticker. The catch-up run queues the
// day messages again only when D is not published yet (or was never asked
// for), and only the tickers whose row of D is not stored. The summary is
// returned even with an error; the error reports a failed scan, a bad event,
// or messages SQS did not accept (so the scheduled invocation is retried; a
// FIFO queue drops the duplicates of the messages already queued).
func (p *ProcessTickers) Handle(ctx context.Context, event json.RawMessage) (Summary, error) {
	log := p.logger()
	defer func() {
		if err := p.Metrics.Flush(); err != nil {
			log.WarnContext(ctx, "metrics flush failed", "error", err.Error())
		}
	}()
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	at := now()
	sum := Summary{RunID: p.runID(ctx), Mode: "scan", Date: marketdata.LastTradingDay(at)}
	ev, err := ParseEvent(event)
	if err != nil {
		log.ErrorContext(ctx, "processTickers event rejected", "runId", sum.RunID, "error", err.Error())
		return sum, err
	}
	if ev.CatchUp && (p.Nights == nil || p.Rows == nil) {
		err := fmt.Errorf("%w: the catch-up run needs the daily-bars and ticker-data tables", ErrBadEvent)
		log.ErrorContext(ctx, "processTickers event rejected", "runId", sum.RunID, "error", err.Error())
		return sum, err
	}

	var symbols []string
	if ev.Manual {
		sum.Mode = "manual"
		symbols = p.manualSymbols(ctx, ev.Tickers, &sum)
	} else {
		res, err := p.Source.HeldSymbols(ctx)
		sum.ItemsScanned, sum.Pages = res.ItemsScanned, res.Pages
		if err != nil {
			log.ErrorContext(ctx, "scan of the portfolio tables failed", "runId", sum.RunID, "itemsScanned", res.ItemsScanned, "error", err.Error())
			return sum, fmt.Errorf("processTickers run %s: %w", sum.RunID, err)
		}
		symbols = res.Symbols
		sum.Invalid = len(res.Invalid)
		for i, inv := range res.Invalid {
			if i == maxInvalidLogged {
				log.WarnContext(ctx, "further invalid symbols not logged", "runId", sum.RunID, "notLogged", len(res.Invalid)-i)
				break
			}
			log.WarnContext(ctx, "invalid symbol skipped", "runId", sum.RunID, "table", inv.Table, "key", inv.Key,
				"value", symbol.Quote(inv.Value), "reason", inv.Reason)
		}
	}
	sum.SymbolsFound = len(symbols)
	p.Metrics.Add(deploy.InvalidSymbols, float64(sum.Invalid))

	needDay := true
	if ev.CatchUp {
		sum.Mode = "catch-up"
		var err error
		if symbols, needDay, err = p.catchUp(ctx, symbols, &sum); err != nil {
			log.ErrorContext(ctx, "catch-up: reading what the night lacks failed", "runId", sum.RunID, "date", sum.Date, "error", err.Error())
			return sum, fmt.Errorf("processTickers run %s: %w", sum.RunID, err)
		}
	}
	var msgs []queue.Message
	if needDay {
		msgs = p.dayMessages(symbols, sum, at)
	}
	days := len(msgs)
	for _, s := range symbols {
		msgs = append(msgs, queue.NewTicker(s, sum.Date, sum.RunID, at))
	}
	res, perr := p.Publisher.Publish(ctx, msgs)
	sum.Failed = len(res.Failed)
	// Failed names every message not queued, a day message by its label
	// ("day …": a symbol holds no space).
	failedDays := 0
	for _, f := range res.Failed {
		if strings.HasPrefix(f.Ticker, "day ") {
			failedDays++
		}
	}
	sum.DayMessages = days - failedDays
	sum.Queued = res.Queued - sum.DayMessages
	p.Metrics.Add(deploy.TickersQueued, float64(sum.Queued))
	for _, f := range res.Failed {
		log.ErrorContext(ctx, "message not queued", "runId", sum.RunID, "ticker", f.Ticker, "code", f.Code,
			"reason", f.Message, "senderFault", f.SenderFault)
	}
	attrs := []any{"runId", sum.RunID, "mode", sum.Mode, "date", sum.Date, "itemsScanned", sum.ItemsScanned, "pages", sum.Pages,
		"symbolsFound", sum.SymbolsFound, "dayMessages", sum.DayMessages, "queued", sum.Queued, "alreadyStored", sum.AlreadyStored,
		"invalid", sum.Invalid, "failed", sum.Failed, "batches", res.Batches}
	switch {
	case perr != nil:
		log.ErrorContext(ctx, "processTickers failed", append(attrs, "error", perr.Error())...)
		return sum, fmt.Errorf("processTickers run %s: %w", sum.RunID, perr)
	case sum.Failed > 0:
		log.ErrorContext(ctx, "processTickers finished with unqueued messages", attrs...)
		return sum, fmt.Errorf("processTickers run %s: %d of %d messages not queued", sum.RunID, sum.Failed, len(msgs))
	}
	log.InfoContext(ctx, "processTickers finished", attrs...)
	return sum, nil
}

// catchUp keeps the symbols whose complete row of the day is not stored
// and says whether the day messages are needed again: when the day is not
// stored yet (not published at the first pass), or no night of it is
// recorded (the first run never ran, or never got that far). A night in
// fallback needs none: its tickers fetch their own bars.
func (p *ProcessTickers) catchUp(ctx context.Context, symbols []string, sum *Summary) ([]string, bool, error) {
	night, known, err := p.Nights.Night(ctx, sum.Date)
	if err != nil {
		return nil, false, err
	}
	session, _, err := p.Nights.Session(ctx, sum.Date)
	if err != nil {
		return nil, false, err
	}
	if known {
		sum.DayStatus = dayStatus(night, session)
	}
	stored, err := p.Rows.Stored(ctx, symbols, sum.Date)
	if err != nil {
		return nil, false, err
	}
	var missing []string
	for _, s := range symbols {
		if !stored[s] {
			missing = append(missing, s)
		}
	}
	sum.AlreadyStored = len(symbols) - len(missing)
	needDay := !known || sum.DayStatus == DayNotPublished
	p.logger().InfoContext(ctx, "catch-up: what the night still lacks", "runId", sum.RunID, "date", sum.Date,
		"dayStatus", sum.DayStatus, "dayAgain", needDay && len(missing) > 0, "missing", len(missing), "alreadyStored", sum.AlreadyStored)
	return missing, needDay, nil
}

// dayMessages builds the day messages of the symbols (sorted): one per
// message group, holding that group's tickers, in parts of at most
// queue.MaxDayTickers.
func (p *ProcessTickers) dayMessages(symbols []string, sum Summary, at time.Time) []queue.Message {
	groups := max(p.Groups, 1)
	byGroup := map[string][]string{}
	var order []string
	for _, s := range symbols {
		g := queue.GroupID(s, groups)
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], s)
	}
	slices.Sort(order)
	var out []queue.Message
	for _, g := range order {
		tickers := byGroup[g]
		parts := (len(tickers) + queue.MaxDayTickers - 1) / queue.MaxDayTickers
		for i := range parts {
			chunk := tickers[i*queue.MaxDayTickers : min((i+1)*queue.MaxDayTickers, len(tickers))]
			out = append(out, queue.NewDay(sum.Date, chunk, g, i+1, parts, sum.RunID, at))
		}
	}
	return out
}

// manualSymbols validates, normalizes and de-duplicates the event's tickers,
// logging and counting the invalid ones.
func (p *ProcessTickers) manualSymbols(ctx context.Context, requested []string, sum *Summary) []string {
	var out []string
	for i, raw := range requested {
		s, err := symbol.Normalize(raw)
		if err != nil {
			sum.Invalid++
			if sum.Invalid <= maxInvalidLogged {
				p.logger().WarnContext(ctx, "invalid symbol skipped", "runId", sum.RunID, "table", "event",
					"key", "tickers["+strconv.Itoa(i)+"]", "value", symbol.Quote(raw), "reason", err.Error())
			}
			continue
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (p *ProcessTickers) runID(ctx context.Context) string {
	if p.RunID != nil {
		return p.RunID(ctx)
	}
	return RunID(ctx)
}

func (p *ProcessTickers) logger() *slog.Logger { return orDiscard(p.Logger) }

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
