// Package pipeline holds the two use cases of the ticker pipeline:
// processTickers (collect every symbol held in the shared portfolio tables
// and queue one message per ticker) and processTicker (for each queued
// ticker, fetch daily bars, compute price, RSI and MA50, and store one row per
// trading day). They depend only on the small interfaces declared here; the
// DynamoDB, SQS and Polygon adapters are wired in package functions.
package pipeline

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/symbol"
)

// PortfolioSource yields every symbol held in the shared tables
// (portfoliodb.Reader).
type PortfolioSource interface {
	ScanSymbols(ctx context.Context) (portfoliodb.ScanResult, error)
}

// Publisher queues ticker messages (queue.Publisher).
type Publisher interface {
	Publish(ctx context.Context, msgs []queue.Message) (queue.Result, error)
}

var (
	_ PortfolioSource = (*portfoliodb.Reader)(nil)
	_ Publisher       = (*queue.Publisher)(nil)
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
	// Mode is "scan" (the shared tables) or "manual" (the event's tickers).
	Mode string `json:"mode"`
	// ItemsScanned and Pages count what the scan read (0 in manual mode).
	ItemsScanned int `json:"itemsScanned"`
	Pages        int `json:"pages"`
	// SymbolsFound is the number of distinct valid symbols.
	SymbolsFound int `json:"symbolsFound"`
	// Queued is the number of messages SQS accepted.
	Queued int `json:"queued"`
	// Invalid is the number of symbols rejected by the validator.
	Invalid int `json:"invalid"`
	// Failed is the number of messages SQS did not accept.
	Failed int `json:"failed"`
}

// ProcessTickers is the processTickers use case.
type ProcessTickers struct {
	Source    PortfolioSource
	Publisher Publisher
	// Metrics receives TickersQueued and InvalidSymbols and is flushed at
	// the end of each run; nil records nothing.
	Metrics *metrics.Recorder
	// Logger is the JSON logger (package logging); nil discards.
	Logger *slog.Logger
	// Now stamps the messages; nil is time.Now.
	Now func() time.Time
	// RunID names a run; nil uses RunID.
	RunID func(ctx context.Context) string
}

// RunID is the Lambda request id when ctx carries one — an asynchronous
// invocation that Lambda retries keeps its request id, so the FIFO
// de-duplication ids of a retried run match the first attempt's — and 32
// random hex digits otherwise.
func RunID(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
		return lc.AwsRequestID
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ParseEvent reads a processTickers event. {"tickers":[...]} asks for just
// those tickers (manual is true); any other JSON value — the Scheduler's
// event, {}, null, or nothing at all — asks for a full scan. Malformed JSON,
// or a "tickers" that is not a non-empty list of strings, is an error.
func ParseEvent(event []byte) (tickers []string, manual bool, err error) {
	event = bytes.TrimSpace(event)
	if len(event) == 0 {
		return nil, false, nil
	}
	if !json.Valid(event) {
		return nil, false, fmt.Errorf("%w: not valid JSON (want {} or {\"tickers\":[\"AAPL\",...]})", ErrBadEvent)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(event, &obj); err != nil {
		return nil, false, nil // valid JSON but not an object: a scheduled run
	}
	raw, ok := obj["tickers"]
	if !ok {
		return nil, false, nil
	}
	if err := json.Unmarshal(raw, &tickers); err != nil {
		return nil, true, fmt.Errorf("%w: \"tickers\" must be a list of strings", ErrBadEvent)
	}
	switch {
	case len(tickers) == 0:
		return nil, true, fmt.Errorf("%w: \"tickers\" is empty", ErrBadEvent)
	case len(tickers) > MaxManualTickers:
		return nil, true, fmt.Errorf("%w: %d tickers, at most %d", ErrBadEvent, len(tickers), MaxManualTickers)
	}
	return tickers, true, nil
}

// Handle runs processTickers for one invocation event. The summary is
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
	sum := Summary{RunID: p.runID(ctx), Mode: "scan"}
	requested, manual, err := ParseEvent(event)
	if err != nil {
		log.ErrorContext(ctx, "processTickers event rejected", "runId", sum.RunID, "error", err.Error())
		return sum, err
	}

	var symbols []string
	if manual {
		sum.Mode = "manual"
		symbols = p.manualSymbols(ctx, requested, &sum)
	} else {
		res, err := p.Source.ScanSymbols(ctx)
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
	p.Metrics.Add(metrics.InvalidSymbols, float64(sum.Invalid))

	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	at := now()
	msgs := make([]queue.Message, len(symbols))
	for i, s := range symbols {
		msgs[i] = queue.New(s, sum.RunID, at)
	}
	res, perr := p.Publisher.Publish(ctx, msgs)
	sum.Queued, sum.Failed = res.Queued, len(res.Failed)
	p.Metrics.Add(metrics.TickersQueued, float64(sum.Queued))
	for _, f := range res.Failed {
		log.ErrorContext(ctx, "message not queued", "runId", sum.RunID, "ticker", f.Ticker, "code", f.Code,
			"reason", f.Message, "senderFault", f.SenderFault)
	}
	attrs := []any{"runId", sum.RunID, "mode", sum.Mode, "itemsScanned", sum.ItemsScanned, "pages", sum.Pages,
		"symbolsFound", sum.SymbolsFound, "queued", sum.Queued, "invalid", sum.Invalid, "failed", sum.Failed, "batches", res.Batches}
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
