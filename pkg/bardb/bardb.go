// Package bardb is the repository of the daily-bars table
// (deploy.DailyBars): the stored daily history of every ticker, one item per
// ticker and trading day, and the few records the nightly refresh keeps
// beside it (docs/decisions/0002-stored-daily-history.md):
//
//   - a bar: ticker T, date YYYY-MM-DD, o h l c v, the source that wrote it
//     (src: "grouped" or "aggs") and expiresAt, the TTL, two years after the
//     date;
//   - per ticker, under sort keys that sort after every date: "~meta" (how
//     far its history has been checked against the provider, where the
//     provider's history of it starts, when the provider last had no data
//     for it) and "~split" (a split found since its history was stored: the
//     history must be fetched again);
//   - per market day, under the partition MarketKey: the day's state (the
//     grouped answer published, not published yet, or not authorized) and,
//     at "~state", the date through which splits have been checked.
//
// Items are written with PutItem and BatchWriteItem (whose unprocessed items
// are re-sent with backoff), read with GetItem and Query: DynamoDBAPI is
// exactly those calls, and the stack grants exactly those actions.
package bardb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/symbol"
)

// DynamoDBAPI is the part of the DynamoDB client the store uses.
type DynamoDBAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// Sort keys and partition of the records kept beside the bars. "~" sorts
// after every digit, so a query of dates from a day onwards returns a
// ticker's records with its bars.
const (
	MetaKey   = "~meta"
	SplitKey  = "~split"
	StateKey  = "~state"
	MarketKey = "#market" // not a valid symbol: no ticker's partition
)

// Attribute names besides the keys (deploy.AttrTicker, deploy.AttrDate) and
// the TTL (deploy.AttrExpiresAt).
const (
	attrOpen, attrHigh, attrLow, attrClose, attrVolume = "o", "h", "l", "c", "v"
	attrSource                                         = "src"
	attrVerifiedThrough                                = "verifiedThrough"
	attrHistoryStart                                   = "historyStart"
	attrNoDataAt                                       = "noDataAt"
	attrExecutionDate                                  = "executionDate"
	attrRatio                                          = "ratio"
	attrStatus                                         = "status"
	attrParts                                          = "parts"
	attrRows                                           = "rows"
	attrMerged                                         = "merged"
	attrSkipped                                        = "skipped"
	attrMissing                                        = "missing"
	attrSplitsThrough                                  = "splitsThrough"
	attrUpdatedAt                                      = "updatedAt"
)

// Sources of a stored bar.
const (
	SourceGrouped    = "grouped" // the grouped-daily answer of its day
	SourceAggregates = "aggs"    // a per-ticker backfill
)

// Retention is how long a bar is kept after its date (its TTL): the
// indicators read 400 days, the free plan serves two years.
const Retention = 2 * 365 * 24 * time.Hour

// maxBatch is the most requests one BatchWriteItem takes.
const maxBatch = 25

// Store reads and writes the daily-bars table.
type Store struct {
	client DynamoDBAPI
	table  string
	// Retry re-sends the unprocessed items of a BatchWriteItem; its zero
	// value uses DefaultRetry.
	Retry retry.Policy
	// Now stamps updatedAt; nil is time.Now.
	Now func() time.Time
}

// DefaultRetry re-sends unprocessed items up to 6 times in all, full jitter
// from 50 ms capped at 2 s.
var DefaultRetry = retry.Policy{Attempts: 6, Base: 50 * time.Millisecond, Cap: 2 * time.Second}

// NewStore returns a store over the named table (deploy.DailyBars.Name(stage)).
func NewStore(client DynamoDBAPI, table string) *Store {
	return &Store{client: client, table: table}
}

// History is what is stored of one ticker from a date onwards.
type History struct {
	// Bars are the stored bars, ascending by date.
	Bars []marketdata.Bar
	// Meta is the ticker's record (zero when none).
	Meta Meta
	// Split is a split found since the history was stored; nil when none.
	Split *marketdata.Split
}

// Meta is what the refresh knows of a ticker's stored history.
type Meta struct {
	// VerifiedThrough is the last date through which the stored history was
	// replaced by the provider's own (a backfill): a day missing before it
	// is one the provider has no bar of, not a gap.
	VerifiedThrough string
	// HistoryStart is the provider's first bar of the ticker when a backfill
	// found none earlier in its window (a recent listing); "" otherwise.
	HistoryStart string
	// NoDataAt is the last date a backfill found no data at all (an unknown
	// symbol); "" when it found some.
	NoDataAt string
}

// Last returns the date of the newest bar, "" when there is none.
func (h History) Last() string {
	if len(h.Bars) == 0 {
		return ""
	}
	return h.Bars[len(h.Bars)-1].Date
}

// History queries ticker's bars from a date (YYYY-MM-DD) onwards, with its
// records, following pages.
func (s *Store) History(ctx context.Context, ticker, from string) (History, error) {
	var h History
	in := &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		KeyConditionExpression:   aws.String("#t = :t AND #d >= :from"),
		ExpressionAttributeNames: map[string]string{"#t": deploy.AttrTicker, "#d": deploy.AttrDate},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":t": &types.AttributeValueMemberS{Value: ticker}, ":from": &types.AttributeValueMemberS{Value: from},
		},
	}
	p := dynamodb.NewQueryPaginator(s.client, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return History{}, fmt.Errorf("query history of %s from %s in %s: %w", ticker, from, s.table, err)
		}
		for _, it := range out.Items {
			switch date := str(it, deploy.AttrDate); date {
			case MetaKey:
				h.Meta = Meta{VerifiedThrough: str(it, attrVerifiedThrough), HistoryStart: str(it, attrHistoryStart), NoDataAt: str(it, attrNoDataAt)}
			case SplitKey:
				r, _ := num(it, attrRatio)
				h.Split = &marketdata.Split{Ticker: ticker, ExecutionDate: str(it, attrExecutionDate), From: 1, To: r}
			default:
				b, err := unmarshalBar(date, it)
				if err != nil {
					return History{}, fmt.Errorf("history of %s in %s: %w", ticker, s.table, err)
				}
				h.Bars = append(h.Bars, b)
			}
		}
	}
	return h, nil
}

// HasHistory reports whether ticker has any stored bar.
func (s *Store) HasHistory(ctx context.Context, ticker string) (bool, error) {
	out, err := s.client.Query(ctx, &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		KeyConditionExpression:   aws.String("#t = :t AND #d BETWEEN :lo AND :hi"),
		ExpressionAttributeNames: map[string]string{"#t": deploy.AttrTicker, "#d": deploy.AttrDate},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":t": &types.AttributeValueMemberS{Value: ticker}, ":lo": &types.AttributeValueMemberS{Value: "0000-00-00"},
			":hi": &types.AttributeValueMemberS{Value: "9999-99-99"},
		},
		Limit: aws.Int32(1),
	})
	if err != nil {
		return false, fmt.Errorf("query history of %s in %s: %w", ticker, s.table, err)
	}
	return len(out.Items) > 0, nil
}

// PutDayBars stores one bar per ticker (the grouped answer's day merged into
// every held ticker's history), overwriting the same ticker and date.
func (s *Store) PutDayBars(ctx context.Context, bars map[string]marketdata.Bar) error {
	tickers := make([]string, 0, len(bars))
	for t := range bars {
		tickers = append(tickers, t)
	}
	slices.Sort(tickers)
	reqs := make([]types.WriteRequest, 0, len(bars))
	for _, t := range tickers {
		it, err := marshalBar(t, bars[t], SourceGrouped)
		if err != nil {
			return retry.Permanent(err)
		}
		reqs = append(reqs, put(it))
	}
	return s.batchWrite(ctx, "merge day bars", reqs)
}

// Replace is a backfill of one ticker: the provider's bars of a window, to
// replace what is stored in it.
type Replace struct {
	// Bars are the provider's bars of the window, ascending.
	Bars []marketdata.Bar
	// Remove are stored dates of the window the provider has no bar of.
	Remove []string
	// Meta is the ticker's record after the backfill.
	Meta Meta
}

// ReplaceHistory writes a backfill: every bar (overwriting), the removal of
// the dates the provider no longer has, the ticker's record, and the removal
// of its split marker — the marker last, so that a backfill cut half-way is
// done again.
func (s *Store) ReplaceHistory(ctx context.Context, ticker string, r Replace) error {
	reqs := make([]types.WriteRequest, 0, len(r.Bars)+len(r.Remove))
	for _, b := range r.Bars {
		it, err := marshalBar(ticker, b, SourceAggregates)
		if err != nil {
			return retry.Permanent(err)
		}
		reqs = append(reqs, put(it))
	}
	for _, d := range r.Remove {
		reqs = append(reqs, del(ticker, d))
	}
	reqs = append(reqs, put(s.metaItem(ticker, r.Meta)))
	if err := s.batchWrite(ctx, "backfill "+ticker, reqs); err != nil {
		return err
	}
	return s.batchWrite(ctx, "clear split of "+ticker, []types.WriteRequest{del(ticker, SplitKey)})
}

// PutMeta writes ticker's record.
func (s *Store) PutMeta(ctx context.Context, ticker string, m Meta) error {
	return s.putItem(ctx, "record of "+ticker, s.metaItem(ticker, m))
}

// MarkSplits records splits as pending for their tickers: the next refresh
// of each fetches its history again.
func (s *Store) MarkSplits(ctx context.Context, splits []marketdata.Split) error {
	var reqs []types.WriteRequest
	seen := map[string]bool{}
	for _, sp := range splits {
		if !symbol.Valid(sp.Ticker) || seen[sp.Ticker] {
			continue
		}
		seen[sp.Ticker] = true
		reqs = append(reqs, put(map[string]types.AttributeValue{
			deploy.AttrTicker: sAttr(sp.Ticker), deploy.AttrDate: sAttr(SplitKey),
			attrExecutionDate: sAttr(sp.ExecutionDate), attrRatio: nAttr(sp.Ratio()), attrUpdatedAt: sAttr(s.now().UTC().Format(time.RFC3339)),
		}))
	}
	return s.batchWrite(ctx, "mark splits", reqs)
}

// The states of a market day.
const (
	// DayPublished: the grouped answer carried the day and its bars are
	// merged into the histories.
	DayPublished = "published"
	// DayNotPublished: the grouped answer did not carry the day yet.
	DayNotPublished = "notPublished"
	// DayFallback: the plan does not include grouped daily (403): every
	// ticker is refreshed with its own call that night.
	DayFallback = "fallback"
)

// DayState is what the refresh recorded of one market day.
type DayState struct {
	Date string
	// Status is DayPublished, DayNotPublished or DayFallback.
	Status string
	// Parts are the day messages whose tickers were merged (their keys), so
	// a redelivered message costs no call.
	Parts []string
	// Rows, Merged, Skipped and Missing count the last grouped answer: its
	// rows, the held tickers merged, the rows skipped, the held tickers
	// absent from it.
	Rows, Merged, Skipped, Missing int
	UpdatedAt                      time.Time
}

// HasPart reports whether the day message part key was merged.
func (d DayState) HasPart(key string) bool { return slices.Contains(d.Parts, key) }

// Day returns the state of a market day, and false when none is recorded.
func (s *Store) Day(ctx context.Context, date string) (DayState, bool, error) {
	it, err := s.getItem(ctx, MarketKey, date)
	if err != nil || it == nil {
		return DayState{}, false, err
	}
	d := DayState{Date: date, Status: str(it, attrStatus)}
	if ss, ok := it[attrParts].(*types.AttributeValueMemberSS); ok {
		d.Parts = slices.Sorted(slices.Values(ss.Value))
	}
	for name, p := range map[string]*int{attrRows: &d.Rows, attrMerged: &d.Merged, attrSkipped: &d.Skipped, attrMissing: &d.Missing} {
		v, _ := num(it, name)
		*p = int(v)
	}
	d.UpdatedAt, _ = time.Parse(time.RFC3339, str(it, attrUpdatedAt))
	return d, true, nil
}

// PutDay writes the state of a market day.
func (s *Store) PutDay(ctx context.Context, d DayState) error {
	it := map[string]types.AttributeValue{
		deploy.AttrTicker: sAttr(MarketKey), deploy.AttrDate: sAttr(d.Date), attrStatus: sAttr(d.Status),
		attrRows: nAttr(float64(d.Rows)), attrMerged: nAttr(float64(d.Merged)), attrSkipped: nAttr(float64(d.Skipped)), attrMissing: nAttr(float64(d.Missing)),
		attrUpdatedAt: sAttr(s.now().UTC().Format(time.RFC3339)),
	}
	if len(d.Parts) > 0 {
		it[attrParts] = &types.AttributeValueMemberSS{Value: slices.Compact(slices.Sorted(slices.Values(d.Parts)))}
	}
	return s.putItem(ctx, "state of "+d.Date, it)
}

// MarketState is what the refresh keeps across days.
type MarketState struct {
	// SplitsThrough is the last date through which splits have been checked.
	SplitsThrough string
}

// Market returns the market's state (zero when none is recorded).
func (s *Store) Market(ctx context.Context) (MarketState, error) {
	it, err := s.getItem(ctx, MarketKey, StateKey)
	if err != nil || it == nil {
		return MarketState{}, err
	}
	return MarketState{SplitsThrough: str(it, attrSplitsThrough)}, nil
}

// PutMarket writes the market's state.
func (s *Store) PutMarket(ctx context.Context, m MarketState) error {
	return s.putItem(ctx, "market state", map[string]types.AttributeValue{
		deploy.AttrTicker: sAttr(MarketKey), deploy.AttrDate: sAttr(StateKey), attrSplitsThrough: sAttr(m.SplitsThrough),
		attrUpdatedAt: sAttr(s.now().UTC().Format(time.RFC3339)),
	})
}

func (s *Store) metaItem(ticker string, m Meta) map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{
		deploy.AttrTicker: sAttr(ticker), deploy.AttrDate: sAttr(MetaKey), attrUpdatedAt: sAttr(s.now().UTC().Format(time.RFC3339)),
	}
	for name, v := range map[string]string{attrVerifiedThrough: m.VerifiedThrough, attrHistoryStart: m.HistoryStart, attrNoDataAt: m.NoDataAt} {
		if v != "" {
			it[name] = sAttr(v)
		}
	}
	return it
}

func (s *Store) getItem(ctx context.Context, pk, sk string) (map[string]types.AttributeValue, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table),
		Key:       map[string]types.AttributeValue{deploy.AttrTicker: sAttr(pk), deploy.AttrDate: sAttr(sk)},
	})
	if err != nil {
		return nil, fmt.Errorf("get %s %s from %s: %w", pk, sk, s.table, err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

func (s *Store) putItem(ctx context.Context, what string, it map[string]types.AttributeValue) error {
	if _, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: it}); err != nil {
		return fmt.Errorf("put %s into %s: %w", what, s.table, err)
	}
	return nil
}

// batchWrite sends reqs in batches of 25, re-sending what DynamoDB leaves
// unprocessed (throttling) with backoff. What is still unprocessed when the
// attempts run out is a transient error.
func (s *Store) batchWrite(ctx context.Context, what string, reqs []types.WriteRequest) error {
	policy := s.Retry
	if policy.Attempts == 0 {
		policy = DefaultRetry
	}
	for start := 0; start < len(reqs); start += maxBatch {
		pending := reqs[start:min(start+maxBatch, len(reqs))]
		_, err := policy.Do(ctx, func(ctx context.Context, _ int) error {
			out, err := s.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems: map[string][]types.WriteRequest{s.table: pending},
			})
			if err != nil {
				// The SDK has retried the call itself.
				return retry.Permanent(err)
			}
			pending = out.UnprocessedItems[s.table]
			if len(pending) > 0 {
				return retry.Transient(fmt.Errorf("%d items unprocessed", len(pending)), 0)
			}
			return nil
		})
		if err != nil {
			var re *retry.Error
			if errors.As(err, &re) && retry.IsPermanent(err) {
				err = re.Err // the SDK's error, unclassified: transient to the caller
			}
			return fmt.Errorf("%s in %s: %w", what, s.table, err)
		}
	}
	return nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func put(it map[string]types.AttributeValue) types.WriteRequest {
	return types.WriteRequest{PutRequest: &types.PutRequest{Item: it}}
}

func del(ticker, date string) types.WriteRequest {
	return types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: map[string]types.AttributeValue{
		deploy.AttrTicker: sAttr(ticker), deploy.AttrDate: sAttr(date),
	}}}
}

// marshalBar is the item of a bar: its prices as exact decimal numbers and a
// TTL of Retention after its date.
func marshalBar(ticker string, b marketdata.Bar, source string) (map[string]types.AttributeValue, error) {
	if !symbol.Valid(ticker) {
		return nil, fmt.Errorf("bar of %q: not a normalized symbol", ticker)
	}
	start, err := marketdata.SessionStart(b.Date)
	if err != nil {
		return nil, fmt.Errorf("bar of %s: %w", ticker, err)
	}
	if reason := marketdata.CheckPrices(b); reason != "" {
		return nil, fmt.Errorf("bar of %s on %s: %s", ticker, b.Date, reason)
	}
	return map[string]types.AttributeValue{
		deploy.AttrTicker: sAttr(ticker), deploy.AttrDate: sAttr(b.Date),
		attrOpen: nAttr(b.Open), attrHigh: nAttr(b.High), attrLow: nAttr(b.Low), attrClose: nAttr(b.Close), attrVolume: nAttr(b.Volume),
		attrSource:           sAttr(source),
		deploy.AttrExpiresAt: &types.AttributeValueMemberN{Value: strconv.FormatInt(start.Add(Retention).Unix(), 10)},
	}, nil
}

func unmarshalBar(date string, it map[string]types.AttributeValue) (marketdata.Bar, error) {
	start, err := marketdata.SessionStart(date)
	if err != nil {
		return marketdata.Bar{}, fmt.Errorf("item with sort key %q: %w", date, err)
	}
	b := marketdata.Bar{Date: date, Start: start.UTC()}
	for name, p := range map[string]*float64{attrOpen: &b.Open, attrHigh: &b.High, attrLow: &b.Low, attrClose: &b.Close, attrVolume: &b.Volume} {
		v, err := num(it, name)
		if err != nil {
			return marketdata.Bar{}, fmt.Errorf("bar of %s: %w", date, err)
		}
		*p = v
	}
	return b, nil
}

func sAttr(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func nAttr(v float64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(v, 'f', -1, 64)}
}

func str(it map[string]types.AttributeValue, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func num(it map[string]types.AttributeValue, name string) (float64, error) {
	v, ok := it[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, fmt.Errorf("%s missing", name)
	}
	f, err := strconv.ParseFloat(v.Value, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s %q is not a finite number", name, v.Value)
	}
	return f, nil
}
