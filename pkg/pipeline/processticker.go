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
)

// Defaults of ProcessTicker's zero fields.
const (
	DefaultRecordBudget = 30 * time.Second
	DefaultReserve      = 2 * time.Second
	// DefaultMaxAttempts matches the queue's maxReceiveCount.
	DefaultMaxAttempts = 5
	// DefaultLedgerDays is the trailing window of execution dates whose
	// splits every night asks for again: a split listed late, or whose date
	// is corrected, within it is applied the next night.
	DefaultLedgerDays = 30
	// DefaultTickerCalls bounds the per-ticker calls of a night: held
	// tickers the grouped answers lack (the rest stay stale until the next
	// night).
	DefaultTickerCalls = 20
	// DefaultDayRetryDelay is how long a day or fill message (or a FIFO
	// ticker record) that failed transiently stays hidden before it is
	// delivered again; one cut by the invocation's deadline is visible again
	// at once.
	DefaultDayRetryDelay = time.Minute
	// RequeueTimeout bounds one re-queue or dead-letter send, the SDK's own
	// retries included.
	RequeueTimeout = 10 * time.Second
	// VisibilityTimeout bounds the call that releases handed-back records.
	VisibilityTimeout = 1500 * time.Millisecond
)

// ProcessTicker is the processTicker use case: an SQS batch handler
// (docs/decisions/0004-raw-bars-and-a-ledger.md). A day message makes the
// stored history of the whole market complete up to its trading day: that
// session's grouped answer, once more the session before it (revised after
// its close), the splits of a trailing window into the ledger, and, for
// whatever else the window of the indicators lacks, one fill message per
// missing session queued behind the night's tickers, then the tickers again.
// A fill message fetches one past session. A ticker message computes the
// ticker's row from its stored bars adjusted on read by the ledger — partial
// while its window is being filled — and calls the provider for the ticker
// alone only when the grouped answers lack it (bounded per night). The
// consumers of several message groups run at once: the calls that must be
// made once are claimed (claim.go), the states merged (Coverage).
type ProcessTicker struct {
	Market  MarketData
	Rows    Rows
	History History
	// Publisher queues the fill a day message plans (fill messages, then
	// the night's tickers again); nil plans none: a window is completed only
	// by later nights' day messages.
	Publisher Publisher
	// Source names the market data in stored rows, e.g. "polygon".
	Source string
	// Sessions is how many sessions the indicators read, ending on the
	// trading day (indicators.Lookback when 0): the window the store is kept
	// complete over.
	Sessions int
	// LedgerDays is the trailing window of execution dates whose splits are
	// asked for again every night (DefaultLedgerDays when 0).
	LedgerDays int
	// TickerCalls bounds the per-ticker calls of a night, whatever became
	// of its day message (DefaultTickerCalls when 0); a night whose plan has
	// no grouped answer (fallback) is not bounded.
	TickerCalls int
	// ClaimPoll is how often a record that waits for another consumer's
	// claim (claim.go) looks at its result (DefaultClaimPoll when 0);
	// ClaimLease how long a claim holds without a deadline, and the longest
	// a record waits (DefaultClaimLease when 0).
	ClaimPoll, ClaimLease time.Duration
	// RecordBudget is the least time that must remain before the deadline to
	// start a ticker record; a record that cannot start is handed back to
	// the queue (DefaultRecordBudget when 0). A day message needs DayBudget
	// (twice RecordBudget and 30 s when 0), a fill message FillBudget
	// (RecordBudget when 0).
	RecordBudget, DayBudget, FillBudget time.Duration
	// Reserve is kept free before the deadline to answer Lambda
	// (DefaultReserve when 0).
	Reserve time.Duration
	// Requeuer, when set, keeps a transient failure in a FIFO batch from
	// blocking the records behind it: the record is acknowledged and a copy
	// with Attempt+1 sent to the tail of the queue, or, after MaxAttempts
	// attempts, to the dead-letter queue. Nil hands it back (and, FIFO,
	// every record after it), as for a standard queue. A day message is
	// never re-queued: the tickers behind it need it first.
	Requeuer Requeuer
	// MaxAttempts is the number of attempts after which the Requeuer
	// dead-letters a record (DefaultMaxAttempts when 0).
	MaxAttempts int
	// Visibility, when set, makes records handed back unstarted (no time
	// left, FIFO order) or cut by the work deadline visible again at once,
	// and a day or fill message that failed transiently — or a ticker record
	// of a FIFO source that did and could not be re-queued — after DayRetryDelay
	// (DefaultDayRetryDelay when 0), instead of after the queue's visibility
	// timeout, which would stall the whole message group. Records handed
	// back because the key was refused keep that timeout: a back-off while it
	// is fixed.
	Visibility    Visibility
	DayRetryDelay time.Duration
	// RefreshKey, when set, re-reads the market-data key (a rotated secret).
	// When the provider refuses the key or the plan, processTicker calls it
	// once per invocation and retries the record once; if the key is still
	// refused, the run stops (see Handle).
	RefreshKey func(ctx context.Context) error
	// Metrics receives the counts of the records (deploy.TickersProcessed,
	// deploy.PermanentFailures, ...), the nightly refresh's metrics and
	// deploy.MarketDataKeyRefused, and is flushed at the end of each
	// invocation; nil records nothing.
	Metrics *metrics.Recorder
	// Logger is the JSON logger (package logging); nil discards.
	Logger *slog.Logger
	// Now is the clock of deadlines and durations; nil is time.Now.
	Now func() time.Time
	// MarketNow is the market's clock: when a session was fetched (so
	// whether its revisions are in), a row's fetch time, a v1 message's
	// trading day (it carries none). Nil is Now; `zsm run --date` gives the
	// night's clock here while deadlines stay real.
	MarketNow func() time.Time
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
	Deferred                    // handed back unstarted: no time left, FIFO order, or the run stopped
	Requeued                    // a transient error; acknowledged, a copy re-queued
	DeadLettered                // a transient error at the last attempt; acknowledged, sent to the DLQ
	Current                     // acknowledged without a call: the row of its trading day was already stored
	Stale                       // acknowledged without a row: no bar of its trading day yet; the last good row stays
	Refused                     // handed back: the provider refused the key or the plan, and the run stopped
	DayDone                     // a day message done with: stored, not published yet, or per-ticker fallback
	FillDone                    // a fill message done with: its session stored, or found closed or outside the plan
)

var outcomeNames = [...]string{"stored", "permanent", "transient", "deferred", "requeued", "deadLettered", "current", "stale", "refused", "day", "fill"}

func (o Outcome) String() string {
	if o >= 0 && int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Settled reports whether the record is done with for this run: stored,
// acknowledged without data (permanent, current, stale, a day or a fill
// done) or dead-lettered. The others come back.
func (o Outcome) Settled() bool {
	switch o {
	case Stored, Permanent, DeadLettered, Current, Stale, DayDone, FillDone:
		return true
	}
	return false
}

// Why a record was handed back unstarted (Record.Err of a Deferred record).
var (
	ErrNoTime    = errors.New("not enough time left in the invocation to start it")
	ErrFIFOOrder = errors.New("an earlier record of the FIFO batch was handed back")
	// ErrRunStopped: the provider refused the key or the plan on an earlier
	// record of the batch; nothing more is asked of it in this invocation.
	ErrRunStopped = errors.New("the market-data provider refused the key or the plan: the run stopped")
)

// Record is what became of one record of a batch, for an Observer.
type Record struct {
	MessageID string
	// Ticker is "" for a day or fill message and for a message that does
	// not decode (poison).
	Ticker string
	// Date is the trading day the message is for ("" for poison); a fill
	// message's session.
	Date string
	// Attempt is the message's queue attempt (0 the first time).
	Attempt int
	Outcome Outcome
	// Row is the row written (Stored only).
	Row *Row
	// TickerCall says why the ticker's own bars were fetched ("" when they
	// were not).
	TickerCall string
	// Day is what a day message did (day messages only), Fill what a fill
	// message did (fill messages only).
	Day  *DayResult
	Fill *FillResult
	// Discontinuities are the price-continuity check's findings on the
	// row's last move (Stored only).
	Discontinuities []marketdata.Discontinuity
	// Err is why the record was not stored (nil for Stored, Current and a
	// day or fill done with); for Stale, why there is no bar of the day.
	Err error
}

// Label names the record's message in words: its ticker, "day DATE",
// "fill DATE", or "?".
func (r Record) Label() string {
	switch {
	case r.Fill != nil:
		return "fill " + r.Date
	case r.Day != nil || (r.Ticker == "" && r.Date != ""):
		return "day " + r.Date
	case r.Ticker != "":
		return r.Ticker
	}
	return "?"
}

// Observer hears what became of each record, in order, as the batch goes
// (the CLI renders its progress from it). It must not block.
type Observer func(Record)

// BatchCounts is the outcome of one batch, logged at its end. Transient
// counts every transient failure; Requeued and DeadLettered are those of them
// re-sent instead of handed back.
type BatchCounts struct {
	Stored, Permanent, Transient, Deferred, Requeued, DeadLettered, Current, Stale, Refused, Days, Fills int
}

// Handle processes a batch of queue records. Each record is independent: a
// poison message or a permanent error is logged, counted and acknowledged; a
// ticker whose row of its day is already stored is acknowledged without a
// call; a ticker without a bar of its day yet is acknowledged and counted
// stale (its last good row stays; a later run of the night retries); a
// transient error, or a record there is no time left to start, is listed in
// BatchItemFailures so that SQS delivers it again. For a FIFO source, every
// record after the first one handed back is handed back too, unstarted
// (AWS's rule: later messages of the group must not overtake it) — unless a
// Requeuer is set: a ticker record of a FIFO source that failed transiently
// is then re-queued or dead-lettered (see requeue) and acknowledged, and the
// batch goes on.
//
// A refused key or plan (marketdata.ErrKeyRefused, ErrNotEntitled on a
// ticker's bars) is a failure of the whole run, never of one ticker:
// RefreshKey re-reads the key once and the record is retried once; if it is
// still refused, that record and every record after it are handed back
// (whatever the source), nothing more is asked of the provider, and
// PolygonKeyRefused is counted. Records handed back unstarted are made
// visible again at once through Visibility (those behind a refused key keep
// the queue's visibility timeout as a back-off). Handle never returns an
// error for a record's problem, which would retry the whole batch.
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

	inv := newInvocation()
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	var counts BatchCounts
	var release []queue.VisibilityChange
	handingBack := false
	for _, rec := range ev.Records {
		fifo := strings.HasSuffix(rec.EventSourceARN, ".fifo")
		r := Record{MessageID: rec.MessageId}
		var msg queue.Message
		decoded := false
		if m, err := queue.Decode([]byte(rec.Body)); err == nil {
			msg, decoded = m, true
			r.Ticker, r.Date, r.Attempt = m.Ticker, p.dateOf(m), m.Attempt
		}
		switch {
		case inv.stopped != nil:
			r.Outcome, r.Err = Deferred, fmt.Errorf("%w: %w", ErrRunStopped, inv.stopped)
		case handingBack && fifo:
			r.Outcome, r.Err = Deferred, ErrFIFOOrder
			log.InfoContext(ctx, "record handed back unstarted: an earlier record of the FIFO batch was handed back", "messageId", rec.MessageId)
		case !p.timeLeft(work, msg, decoded):
			r.Outcome, r.Err = Deferred, ErrNoTime
			log.WarnContext(ctx, "record handed back unstarted: not enough time left", "messageId", rec.MessageId,
				"budget", p.budget().String())
		default:
			r, msg = p.record(work, rec, inv)
			if refused(r.Err) && !inv.refreshed && p.RefreshKey != nil && work.Err() == nil {
				// A warm function may hold a key rotated out since it read
				// the secret: read it again, once, and retry the record.
				inv.refreshed = true
				if err := p.RefreshKey(work); err != nil {
					log.ErrorContext(ctx, "market-data key refused; reading it again failed", "error", err.Error())
				} else {
					log.WarnContext(ctx, "market-data key refused: read it again, retrying the record once", "messageId", rec.MessageId,
						"error", r.Err.Error())
					r, msg = p.record(work, rec, inv)
				}
			}
			if refused(r.Err) {
				inv.stopped = r.Err
				r.Outcome = Refused
				p.Metrics.Add(deploy.MarketDataKeyRefused, 1)
				log.ErrorContext(ctx, "market-data provider refused the key or the plan: run stopped, this record and every later one handed back unacknowledged (they come back after the queue's visibility timeout)",
					"messageId", rec.MessageId, "ticker", msg.Label(), "error", r.Err.Error())
			}
			// A record cut by the work deadline is handed back like those
			// there is no time left to start (which follow it anyway): its
			// failure is the invocation's lack of time, not an attempt. A day
			// or fill message is never re-queued behind the tickers that
			// need it.
			if r.Outcome == Transient && fifo && p.Requeuer != nil && work.Err() == nil && !msg.IsMarket() {
				r.Outcome = p.requeue(work, rec, msg, r.Err)
			}
		}
		if p.Observer != nil {
			p.Observer(r)
		}
		switch r.Outcome {
		case Stored:
			counts.Stored++
		case Permanent:
			counts.Permanent++
		case Current:
			counts.Current++
		case Stale:
			counts.Stale++
		case DayDone:
			counts.Days++
		case FillDone:
			counts.Fills++
		case Requeued:
			counts.Transient++
			counts.Requeued++
		case DeadLettered:
			counts.Transient++
			counts.DeadLettered++
		case Transient, Deferred, Refused:
			switch r.Outcome {
			case Transient:
				counts.Transient++
				if msg.IsMarket() || fifo {
					// A day or fill message (never re-queued), or a FIFO
					// record, heads its message group now: with the queue's
					// visibility timeout the whole group would wait 18
					// minutes. Cut by the work deadline it comes back at once
					// (lack of time, not an attempt); a failure comes back
					// after the retry delay.
					delay := p.dayRetryDelay()
					if work.Err() != nil {
						delay = 0
					}
					release = append(release, queue.VisibilityChange{ReceiptHandle: rec.ReceiptHandle, Timeout: delay})
				}
			case Refused:
				counts.Refused++
			default:
				counts.Deferred++
				if !errors.Is(r.Err, ErrRunStopped) {
					release = append(release, queue.VisibilityChange{ReceiptHandle: rec.ReceiptHandle})
				}
			}
			handingBack = true
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	released := p.release(ctx, release)
	p.Metrics.Add(deploy.TickersProcessed, float64(counts.Stored))
	p.Metrics.Add(deploy.PermanentFailures, float64(counts.Permanent))
	p.Metrics.Add(deploy.TransientFailures, float64(counts.Transient+counts.Deferred+counts.Refused))
	p.Metrics.Add(deploy.TickersCurrent, float64(counts.Current))
	p.Metrics.Add(deploy.TickersStale, float64(counts.Stale))
	if p.Requeuer != nil {
		p.Metrics.Add(deploy.TickersRequeued, float64(counts.Requeued))
		p.Metrics.Add(deploy.TickersDeadLettered, float64(counts.DeadLettered))
	}
	if p.Visibility != nil {
		p.Metrics.Add(deploy.RecordsReleased, float64(released))
	}
	log.InfoContext(ctx, "processTicker batch finished", "records", len(ev.Records), "stored", counts.Stored,
		"current", counts.Current, "stale", counts.Stale, "days", counts.Days, "fills", counts.Fills,
		"permanentFailures", counts.Permanent, "transientFailures", counts.Transient, "deferred", counts.Deferred,
		"refused", counts.Refused, "requeued", counts.Requeued, "deadLettered", counts.DeadLettered,
		"handedBack", len(resp.BatchItemFailures), "released", released)
	return resp, nil
}

// refused reports whether err is the provider refusing the key or the plan.
func refused(err error) bool {
	return errors.Is(err, marketdata.ErrKeyRefused) || errors.Is(err, marketdata.ErrNotEntitled)
}

// release applies the visibility changes of the handed-back records, within
// the reserve kept to answer Lambda. A failure only delays them.
func (p *ProcessTicker) release(ctx context.Context, changes []queue.VisibilityChange) int {
	if p.Visibility == nil || len(changes) == 0 {
		return 0
	}
	rctx, cancel := context.WithTimeout(ctx, VisibilityTimeout)
	defer cancel()
	if err := p.Visibility.Change(rctx, changes); err != nil {
		orDiscard(p.Logger).WarnContext(ctx, "handed-back records keep their visibility timeout: the change failed", "records", len(changes), "error", err.Error())
		return 0
	}
	n := 0
	for _, c := range changes {
		if c.Timeout == 0 {
			n++
		}
	}
	return n
}

// record processes one record and returns what became of it, with the
// decoded message (for a re-queue).
func (p *ProcessTicker) record(ctx context.Context, rec events.SQSMessage, inv *invocation) (Record, queue.Message) {
	log := orDiscard(p.Logger)
	r := Record{MessageID: rec.MessageId}
	msg, err := queue.Decode([]byte(rec.Body))
	if err != nil {
		log.WarnContext(ctx, "poison message acknowledged", "messageId", rec.MessageId, "reason", err.Error())
		r.Outcome, r.Err = Permanent, err
		return r, msg
	}
	r.Ticker, r.Date, r.Attempt = msg.Ticker, p.dateOf(msg), msg.Attempt
	log = log.With("messageId", rec.MessageId)
	switch {
	case msg.IsFill():
		log = log.With("session", r.Date, "night", msg.Night, "runId", msg.RunID)
	case msg.IsDay():
		log = log.With("date", r.Date, "runId", msg.RunID)
	default:
		log = log.With("ticker", msg.Ticker, "runId", msg.RunID)
	}
	if msg.Attempt > 0 {
		// Not "attempt": the Polygon client's lines use it for HTTP attempts.
		log = log.With("queueAttempt", msg.Attempt)
	}
	switch {
	case msg.IsFill():
		return p.fill(ctx, log, r, msg, inv), msg
	case msg.IsDay():
		return p.day(ctx, log, r, msg, inv), msg
	}
	return p.ticker(ctx, log, r, msg, inv), msg
}

// dateOf is the trading day a message is for: its own, or for a v1
// message, the last completed one at the clock.
func (p *ProcessTicker) dateOf(m queue.Message) string {
	if m.Date != "" {
		return m.Date
	}
	return marketdata.LastTradingDay(p.marketNow())
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

// timeLeft reports whether a record (its message msg when decoded) can
// start before ctx's deadline: a day message needs DayBudget, a fill
// message FillBudget, any other RecordBudget.
func (p *ProcessTicker) timeLeft(ctx context.Context, msg queue.Message, decoded bool) bool {
	if ctx.Err() != nil {
		return false
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return true
	}
	need := p.budget()
	switch {
	case decoded && msg.IsDay():
		need = p.dayBudget()
	case decoded && msg.IsFill():
		need = p.fillBudget()
	}
	return dl.Sub(p.now()) >= need
}

func (p *ProcessTicker) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *ProcessTicker) marketNow() time.Time {
	if p.MarketNow != nil {
		return p.MarketNow()
	}
	return p.now()
}

func (p *ProcessTicker) sessions() int { return orDefault(p.Sessions, indicators.Lookback) }

func (p *ProcessTicker) ledgerDays() int { return orDefault(p.LedgerDays, DefaultLedgerDays) }

func (p *ProcessTicker) tickerCalls() int { return orDefault(p.TickerCalls, DefaultTickerCalls) }

func (p *ProcessTicker) fillBudget() time.Duration { return orDefault(p.FillBudget, p.budget()) }

func (p *ProcessTicker) maxAttempts() int { return orDefault(p.MaxAttempts, DefaultMaxAttempts) }

func (p *ProcessTicker) budget() time.Duration { return orDefault(p.RecordBudget, DefaultRecordBudget) }

func (p *ProcessTicker) dayBudget() time.Duration {
	return orDefault(p.DayBudget, 2*p.budget()+30*time.Second)
}

func (p *ProcessTicker) dayRetryDelay() time.Duration {
	return orDefault(p.DayRetryDelay, DefaultDayRetryDelay)
}

func (p *ProcessTicker) reserve() time.Duration { return orDefault(p.Reserve, DefaultReserve) }

// orDefault is v when it is set (positive), else def: the zero value of an
// option means its default.
func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
