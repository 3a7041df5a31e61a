package pipeline

import (
	"context"
	"time"

	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/queue"
)

// The ports of the two use cases, declared where they are consumed and typed
// in the domain's words (packages marketdata, indicators, coverage, queue's
// messages): no adapter's type crosses them, so this package links no AWS
// service client (a test holds it to that). The adapters implement them
// directly or through the wiring in pkg/app.

// MarketData is the market-data source (polygon.Client): one day of the
// whole market, the splits of a date range, and a ticker's own bars, each as
// the market printed them. Errors are classified with package retry; a
// refused key or plan wraps marketdata.ErrKeyRefused or
// marketdata.ErrNotEntitled, a date before the plan's history
// marketdata.ErrOutsidePlan.
type MarketData interface {
	// GroupedDaily returns every ticker's bar of one session (not
	// Published when the session has no rows yet).
	GroupedDaily(ctx context.Context, date string) (marketdata.Day, error)
	// Splits lists the splits whose execution date is from one date to
	// another (both included).
	Splits(ctx context.Context, from, to string) ([]marketdata.Split, error)
	// DailyBars returns ticker's bars from one date to another, ascending.
	DailyBars(ctx context.Context, ticker, from, to string) ([]marketdata.Bar, error)
}

// Bars is the stored market as printed: one bar per ticker and session.
type Bars interface {
	// PutSessionBars stores one session's bars of every ticker of the
	// grouped answer.
	PutSessionBars(ctx context.Context, date string, bars map[string]marketdata.Bar) error
	// PutTickerBars stores bars of one ticker from its own call.
	PutTickerBars(ctx context.Context, ticker string, bars []marketdata.Bar) error
	// TickerHistory reads ticker's bars from one date to another (both
	// included), its adjustments in the ledger and its record.
	TickerHistory(ctx context.Context, ticker, from, to string) (coverage.History, error)
}

// Ledger is the stored ledger of adjustments, by date.
type Ledger interface {
	// Ledger lists the adjustments of every ticker dated from one date to
	// another (both included).
	Ledger(ctx context.Context, from, to string) ([]marketdata.Adjustment, error)
	// ChangeLedger adds (or overwrites) and removes adjustments.
	ChangeLedger(ctx context.Context, add, remove []marketdata.Adjustment) error
}

// Coverage is what the store knows it holds: each session's state, each
// night's, the market's, and each ticker's record. The consumers of several
// message groups write the night's and the market's states at once: each
// write merges one fact into them, none writes them whole. States are read
// as last written (consistently).
type Coverage interface {
	Nights
	Claims
	Sessions(ctx context.Context, from, to string) (map[string]coverage.Session, error)
	// PutSession writes a session's state (its claim's holder alone asks
	// the provider for it, see Claims).
	PutSession(ctx context.Context, s coverage.Session) error
	// AddNightPart records a day message's part done on the night of date.
	AddNightPart(ctx context.Context, date, part string) error
	// SetFallback records that the night of date has no grouped answer.
	SetFallback(ctx context.Context, date string) error
	// TakeTickerCall counts one per-ticker call on the night of date
	// unless bound are counted already: false, nothing counted, when the
	// night's calls are spent.
	TakeTickerCall(ctx context.Context, date string, bound int) (bool, error)
	Market(ctx context.Context) (coverage.Market, error)
	// SetLedger records that the ledger holds every split the provider
	// lists with an execution date from one date through another (never a
	// range that ends before the one recorded).
	SetLedger(ctx context.Context, from, through string) error
	// MovePlanFrom records the first session the plan's history reaches
	// (never moved back).
	MovePlanFrom(ctx context.Context, date string) error
	// AddClosure records a closure of the exchange learnt.
	AddClosure(ctx context.Context, c marketdata.Closure) error
	PutTicker(ctx context.Context, ticker string, rec coverage.Ticker) error
}

// Claims are leases on the pieces of a night's work that must be done once
// whichever message group's consumer gets there first — a session's grouped
// call, the night's check of the splits —: one consumer holds the claim and
// does the work, the others wait for its result.
type Claims interface {
	// Claim takes, or renews, owner's lease on the work called name until
	// a time; false while another owner's lease runs at now.
	Claim(ctx context.Context, name, owner string, now, until time.Time) (bool, error)
	// Release ends owner's lease, if it still holds it.
	Release(ctx context.Context, name, owner string) error
}

// Nights reads the state of one night and of one session (processTickers'
// catch-up; bardb.Store with GetItem only).
type Nights interface {
	Night(ctx context.Context, date string) (coverage.Night, bool, error)
	Session(ctx context.Context, date string) (coverage.Session, bool, error)
}

// History is the stored daily history processTicker reads and writes
// (bardb.Store).
type History interface {
	Bars
	Ledger
	Coverage
}

// Row is a ticker's row of a trading day: the snapshot of its indicators,
// when and from what it was computed.
type Row struct {
	Ticker string
	// Timestamp is the 16:00 New York close of the trading day (the row's
	// key in ticker-data).
	Timestamp time.Time
	indicators.Snapshot
	FetchedAt time.Time
	// Source names the market data ("polygon", or "sandbox" locally).
	Source string
	// Partial: computed while the ticker's window of history was still being
	// filled; an indicator that needs what is missing is absent. It is
	// computed again when the fill completes.
	Partial bool
}

// Rows is the ticker-data table (tickerdb.Store, through pkg/app).
type Rows interface {
	PutRow(ctx context.Context, r Row) error
	// HasRow reports whether ticker's complete row of the trading day date
	// is stored (a partial row is not complete).
	HasRow(ctx context.Context, ticker, date string) (bool, error)
}

// Publisher queues messages on the ticker queue (sqsqueue.Publisher):
// processTickers' night, and the fill a day message plans.
type Publisher interface {
	Publish(ctx context.Context, msgs []queue.Message) (queue.Result, error)
}

// Requeuer re-sends a message of a FIFO source instead of handing it back
// (sqsqueue.Requeuer): Requeue to the tail of the ticker queue, DeadLetter to
// its dead-letter queue, both in message group groupID.
type Requeuer interface {
	Requeue(ctx context.Context, msg queue.Message, groupID string) error
	DeadLetter(ctx context.Context, msg queue.Message, groupID string) error
}

// Visibility changes how long handed-back records stay hidden
// (sqsqueue.Visibility).
type Visibility interface {
	Change(ctx context.Context, changes []queue.VisibilityChange) error
}

// Holdings are the symbols held in the shared portfolio tables.
type Holdings struct {
	// ItemsScanned and Pages count what the scan read.
	ItemsScanned, Pages int
	// Symbols are the valid symbols, normalized, sorted and unique.
	Symbols []string
	// Invalid are the rejected ones.
	Invalid []InvalidSymbol
}

// InvalidSymbol is a value of the shared tables that is not a symbol.
type InvalidSymbol struct {
	// Table and Key identify the item; Value is what was found (untrusted:
	// quote it); Reason the validator's one line.
	Table, Key, Value, Reason string
}

// PortfolioSource yields every symbol held in the shared tables
// (portfoliodb.Reader, through pkg/app).
type PortfolioSource interface {
	HeldSymbols(ctx context.Context) (Holdings, error)
}

// RowIndex says which tickers have their complete row of a trading day
// stored (tickerdb.Store).
type RowIndex interface {
	Stored(ctx context.Context, tickers []string, date string) (map[string]bool, error)
}
