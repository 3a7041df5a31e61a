package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/queue"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// MarketData returns the daily bars of a ticker between two New York dates
// (YYYY-MM-DD, both included), ascending. Errors are classified with package
// retry (polygon.Client).
type MarketData interface {
	DailyBars(ctx context.Context, ticker, from, to string) ([]marketdata.Bar, error)
}

// TickerStore writes one row per ticker and trading day (tickerdb.Store).
type TickerStore interface {
	Put(ctx context.Context, r tickerdb.Row) error
}

var _ TickerStore = (*tickerdb.Store)(nil)

// Requeuer re-sends a message of a FIFO source instead of handing it back
// (queue.Requeuer): Requeue to the tail of the ticker queue, DeadLetter to its
// dead-letter queue, both in message group groupID.
type Requeuer interface {
	Requeue(ctx context.Context, msg queue.Message, groupID string) error
	DeadLetter(ctx context.Context, msg queue.Message, groupID string) error
}

var _ Requeuer = (*queue.Requeuer)(nil)

// Defaults of ProcessTicker's zero fields.
const (
	DefaultRecordBudget = 30 * time.Second
	DefaultReserve      = 2 * time.Second
	// DefaultMaxAttempts matches the queue's maxReceiveCount.
	DefaultMaxAttempts = 5
	// RequeueTimeout bounds one re-queue or dead-letter send, the SDK's own
	// retries included.
	RequeueTimeout = 10 * time.Second
)

// ProcessTicker is the processTicker use case: an SQS batch handler.
type ProcessTicker struct {
	Market MarketData
	Store  TickerStore
	// Source names the market data in stored rows, e.g. "polygon".
	Source string
	// HistoryDays is how many calendar days of bars to request, ending on
	// the last completed trading day (deploy.DefaultPolygonHistoryDays when 0).
	HistoryDays int
	// RecordBudget is the least time that must remain before the deadline to
	// start a record; a record that cannot start is handed back to the queue
	// (DefaultRecordBudget when 0).
	RecordBudget time.Duration
	// Reserve is kept free before the deadline to answer Lambda
	// (DefaultReserve when 0).
	Reserve time.Duration
	// Requeuer, when set, keeps a transient failure in a FIFO batch from
	// blocking the records behind it: the record is acknowledged and a copy
	// with Attempt+1 sent to the tail of the queue, or, after MaxAttempts
	// attempts, to the dead-letter queue. Nil hands it back (and, FIFO,
	// every record after it), as for a standard queue.
	Requeuer Requeuer
	// MaxAttempts is the number of attempts after which the Requeuer
	// dead-letters a record (DefaultMaxAttempts when 0).
	MaxAttempts int
	// Metrics receives TickersProcessed, PermanentFailures,
	// TransientFailures, TickersRequeued and TickersDeadLettered and is
	// flushed at the end of each invocation; nil records nothing.
	Metrics *metrics.Recorder
	// Logger is the JSON logger (package logging); nil discards.
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Observer, when set, hears what became of each record.
	Observer Observer
}

// Outcome is what became of one record.
type Outcome int

// The outcomes of a record.
const (
	Stored       Outcome = iota // a row was written
	Permanent                   // acknowledged without data: poison or a permanent error
	Transient                   // handed back: a transient error
	Deferred                    // handed back unstarted: no time left, or FIFO order
	Requeued                    // a transient error; acknowledged, a copy re-queued
	DeadLettered                // a transient error at the last attempt; acknowledged, sent to the DLQ
)

var outcomeNames = [...]string{"stored", "permanent", "transient", "deferred", "requeued", "deadLettered"}

func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Settled reports whether the record is done with for this run: stored,
// acknowledged without data, or dead-lettered. The others come back.
func (o Outcome) Settled() bool { return o == Stored || o == Permanent || o == DeadLettered }

// Why a record was handed back unstarted (Record.Err of a Deferred record).
var (
	ErrNoTime    = errors.New("not enough time left in the invocation to start it")
	ErrFIFOOrder = errors.New("an earlier record of the FIFO batch was handed back")
)

// Record is what became of one record of a batch, for an Observer.
type Record struct {
	MessageID string
	// Ticker is "" for a message that does not decode (poison).
	Ticker string
	// Attempt is the message's queue attempt (0 the first time).
	Attempt int
	Outcome Outcome
	// Row is the row written (Stored only).
	Row *tickerdb.Row
	// Err is why the record was not stored (nil for Stored).
	Err error
}

// Observer hears what became of each record, in order, as the batch goes
// (the CLI renders its progress from it). It must not block.
type Observer func(Record)

// BatchCounts is the outcome of one batch, logged at its end. Transient
// counts every transient failure; Requeued and DeadLettered are those of them
// re-sent instead of handed back.
type BatchCounts struct {
	Stored, Permanent, Transient, Deferred, Requeued, DeadLettered int
}

// Handle processes a batch of queue records. Each record is independent: a
// poison message or a permanent error is logged, counted and acknowledged; a
// transient error, or a record there is no time left to start, is listed in
// BatchItemFailures so that SQS delivers it again. For a FIFO source, every
// record after the first one handed back is handed back too, unstarted
// (AWS's rule: later messages of the group must not overtake it) — unless a
// Requeuer is set: a record of a FIFO source that failed transiently is then
// re-queued or dead-lettered (see requeue) and acknowledged, and the batch
// goes on. Handle never returns an error for a record's problem, which would
// retry the whole batch.
func (p *ProcessTicker) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	log := orDiscard(p.Logger)
	defer func() {
		if err := p.Metrics.Flush(); err != nil {
			log.WarnContext(ctx, "metrics flush failed", "error", err.Error())
		}
	}()
	// Work stops Reserve before the invocation's deadline, so that there is
	// always time to answer with the records handed back.
	work := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadline(ctx, dl.Add(-p.reserve()))
		defer cancel()
	}

	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	var counts BatchCounts
	handingBack := false
	for _, rec := range ev.Records {
		fifo := strings.HasSuffix(rec.EventSourceARN, ".fifo")
		r := Record{MessageID: rec.MessageId}
		switch {
		case handingBack && fifo:
			r.Outcome, r.Err = Deferred, ErrFIFOOrder
			log.InfoContext(ctx, "record handed back unstarted: an earlier record of the FIFO batch was handed back", "messageId", rec.MessageId)
		case !p.timeLeft(work):
			r.Outcome, r.Err = Deferred, ErrNoTime
			log.WarnContext(ctx, "record handed back unstarted: not enough time left", "messageId", rec.MessageId,
				"budget", p.budget().String())
		default:
			var msg queue.Message
			r, msg = p.record(work, rec)
			// A record cut by the work deadline is handed back like those
			// there is no time left to start (which follow it anyway): its
			// failure is the invocation's lack of time, not an attempt.
			if r.Outcome == Transient && fifo && p.Requeuer != nil && work.Err() == nil {
				r.Outcome = p.requeue(work, rec, msg, r.Err)
			}
		}
		if p.Observer != nil {
			p.Observer(r)
		}
		out := r.Outcome
		switch out {
		case Stored:
			counts.Stored++
		case Permanent:
			counts.Permanent++
		case Requeued:
			counts.Transient++
			counts.Requeued++
		case DeadLettered:
			counts.Transient++
			counts.DeadLettered++
		case Transient, Deferred:
			if out == Transient {
				counts.Transient++
			} else {
				counts.Deferred++
			}
			handingBack = true
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	p.Metrics.Add(metrics.TickersProcessed, float64(counts.Stored))
	p.Metrics.Add(metrics.PermanentFailures, float64(counts.Permanent))
	p.Metrics.Add(metrics.TransientFailures, float64(counts.Transient+counts.Deferred))
	if p.Requeuer != nil {
		p.Metrics.Add(metrics.TickersRequeued, float64(counts.Requeued))
		p.Metrics.Add(metrics.TickersDeadLettered, float64(counts.DeadLettered))
	}
	log.InfoContext(ctx, "processTicker batch finished", "records", len(ev.Records), "stored", counts.Stored,
		"permanentFailures", counts.Permanent, "transientFailures", counts.Transient, "deferred", counts.Deferred,
		"requeued", counts.Requeued, "deadLettered", counts.DeadLettered, "handedBack", len(resp.BatchItemFailures))
	return resp, nil
}

// record processes one record and returns what became of it, with the
// decoded message (for a re-queue).
func (p *ProcessTicker) record(ctx context.Context, rec events.SQSMessage) (Record, queue.Message) {
	log := orDiscard(p.Logger)
	start := p.now()
	r := Record{MessageID: rec.MessageId}
	msg, err := queue.Decode([]byte(rec.Body))
	if err != nil {
		log.WarnContext(ctx, "poison message acknowledged", "messageId", rec.MessageId, "reason", err.Error())
		r.Outcome, r.Err = Permanent, err
		return r, msg
	}
	r.Ticker, r.Attempt = msg.Ticker, msg.Attempt
	log = log.With("messageId", rec.MessageId, "ticker", msg.Ticker, "runId", msg.RunID)
	if msg.Attempt > 0 {
		// Not "attempt": the Polygon client's lines use it for HTTP attempts.
		log = log.With("queueAttempt", msg.Attempt)
	}
	row, err := p.refresh(ctx, msg.Ticker)
	if err != nil {
		r.Err = err
		if retry.IsPermanent(err) {
			log.ErrorContext(ctx, "ticker not refreshed: permanent error, message acknowledged", "error", err.Error())
			r.Outcome = Permanent
			return r, msg
		}
		log.WarnContext(ctx, "ticker not refreshed: transient error", "error", err.Error())
		r.Outcome = Transient
		return r, msg
	}
	log.InfoContext(ctx, "ticker refreshed", "asOf", row.AsOf, "price", row.Price, "rsi", deref(row.RSI), "ma50", deref(row.MA50),
		"bars", row.Bars, "durationMs", p.now().Sub(start).Milliseconds())
	r.Outcome, r.Row = Stored, &row
	return r, msg
}

// requeue deals with a record of a FIFO source that failed transiently with
// lastErr, instead of handing it back and blocking every record behind it in
// its message group: while attempts remain, a copy with Attempt+1 goes to the
// tail of the queue in the record's message group; after the last attempt the
// message goes to the dead-letter queue, with an error log line. Either way the
// record is acknowledged. If the send fails, the record is handed back
// (transient), as without a Requeuer.
func (p *ProcessTicker) requeue(ctx context.Context, rec events.SQSMessage, msg queue.Message, lastErr error) Outcome {
	// Within the work deadline (the reserve stays free to answer Lambda), and
	// bounded so that an SQS in trouble cannot take the whole invocation.
	ctx, cancel := context.WithTimeout(ctx, RequeueTimeout)
	defer cancel()
	log := orDiscard(p.Logger).With("messageId", rec.MessageId, "ticker", msg.Ticker, "runId", msg.RunID)
	group := rec.Attributes["MessageGroupId"]
	attempts := msg.Attempt + 1 // the one that just failed included
	if attempts < p.maxAttempts() {
		next := msg
		next.Attempt = attempts
		if err := p.Requeuer.Requeue(ctx, next, group); err != nil {
			log.ErrorContext(ctx, "re-queue failed: message handed back", "attempts", attempts, "error", err.Error())
			return Transient
		}
		log.WarnContext(ctx, "transient error: message re-queued at the tail of the queue", "attempts", attempts,
			"maxAttempts", p.maxAttempts(), "error", lastErr.Error())
		return Requeued
	}
	if err := p.Requeuer.DeadLetter(ctx, msg, group); err != nil {
		log.ErrorContext(ctx, "dead-lettering failed: message handed back", "attempts", attempts, "error", err.Error())
		return Transient
	}
	log.ErrorContext(ctx, "ticker dead-lettered: transient errors on every attempt", "attempts", attempts,
		"lastError", lastErr.Error())
	return DeadLettered
}

// refresh fetches, computes and stores one ticker. Errors are classified.
func (p *ProcessTicker) refresh(ctx context.Context, ticker string) (tickerdb.Row, error) {
	now := p.now()
	// The range ends on the last trading day whose close has passed: during
	// a session (or on a holiday) "today" would bring a partial bar, Stored
	// under a close that has not happened and read as that day's data.
	to := marketdata.LastTradingDay(now)
	end, err := time.Parse(marketdata.DateLayout, to)
	if err != nil {
		return tickerdb.Row{}, retry.Permanent(fmt.Errorf("last trading day %q: %w", to, err))
	}
	from := end.AddDate(0, 0, -p.historyDays()).Format(marketdata.DateLayout)
	bars, err := p.Market.DailyBars(ctx, ticker, from, to)
	if err != nil {
		if ctx.Err() != nil && !retry.IsPermanent(err) {
			err = errors.Join(err, ctx.Err())
		}
		return tickerdb.Row{}, fmt.Errorf("daily bars %s %s..%s: %w", ticker, from, to, err)
	}
	snap, err := indicators.Compute(bars)
	if err != nil {
		// The same request would return the same series: not worth a retry.
		return tickerdb.Row{}, retry.Permanent(fmt.Errorf("indicators of %s: %w", ticker, err))
	}
	ts, err := marketdata.CloseInstant(snap.AsOf)
	if err != nil {
		return tickerdb.Row{}, retry.Permanent(fmt.Errorf("close of %s: %w", ticker, err))
	}
	row := tickerdb.Row{Ticker: ticker, Timestamp: ts, Snapshot: snap, FetchedAt: now.UTC(), Source: p.Source}
	if err := p.Store.Put(ctx, row); err != nil {
		return row, err
	}
	return row, nil
}

// timeLeft reports whether a record can start before ctx's deadline.
func (p *ProcessTicker) timeLeft(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	dl, ok := ctx.Deadline()
	return !ok || dl.Sub(p.now()) >= p.budget()
}

func (p *ProcessTicker) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *ProcessTicker) historyDays() int {
	if p.HistoryDays > 0 {
		return p.HistoryDays
	}
	return deploy.DefaultPolygonHistoryDays
}

func (p *ProcessTicker) maxAttempts() int {
	if p.MaxAttempts > 0 {
		return p.MaxAttempts
	}
	return DefaultMaxAttempts
}

func (p *ProcessTicker) budget() time.Duration {
	if p.RecordBudget > 0 {
		return p.RecordBudget
	}
	return DefaultRecordBudget
}

func (p *ProcessTicker) reserve() time.Duration {
	if p.Reserve > 0 {
		return p.Reserve
	}
	return DefaultReserve
}

// deref returns *v, or nil for a log attribute of an absent indicator.
func deref(v *float64) any {
	if v == nil {
		return nil
	}
	return *v
}
