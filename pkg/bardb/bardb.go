// Package bardb is the repository of the daily-bars table
// (deploy.DailyBars): the market as it printed, one raw bar per ticker and
// session; the ledger of adjustments (splits) applied when a history is read;
// and what the store covers of the market (docs/decisions/0004-raw-bars-and-a-ledger.md).
// It speaks the use case's words (pkg/marketdata, pkg/coverage); its items,
// under the table's keys ticker (HASH) and date (RANGE):
//
//   - ticker T, "b#YYYY-MM-DD": a bar as printed — o h l c v, src "aggs"
//     when a per-ticker call wrote it (absent: the grouped answer), and
//     expiresAt, the TTL, Retention after the date;
//   - ticker T, "l#YYYY-MM-DD#kind#id": an adjustment of T effective that
//     date (kind, from, to, id), the ticker's copy of the ledger's entry;
//   - ticker T, "r#": the ticker's record (coverage.Ticker);
//   - partition LedgerKey, "YYYY-MM-DD#T#kind#id": the ledger by date, the
//     index a night's check of the splits compares the provider's list with;
//   - partition MarketKey: "s#YYYY-MM-DD" a session's state, "n#YYYY-MM-DD"
//     a night's, "m#" the market's (coverage.Session, Night, Market), and
//     "c#<name>" a claim: the lease of one consumer on a piece of the
//     night's work (see Claim).
//
// The consumers of several message groups write the night's and the
// market's states at once: those are merged attribute by attribute
// (UpdateItem: ADD to a set or a counter, SET of one attribute, under a
// condition where a value may only move forward), never written whole, so
// that no consumer's part, closure or start of the plan's history is lost.
// The states of the market partition are read consistently.
//
// A ticker's window is one Query from "b#<first session>" to "r#~": its bars,
// its ledger and its record. The items of the design before (adjusted bars
// under "YYYY-MM-DD", records under "~meta", "~split", "~state") sort outside
// every range this package reads, so adjusted and raw bars never mix; their
// TTL removes them (docs/migration.md).
//
// Items are written with PutItem, UpdateItem and BatchWriteItem (whose
// unprocessed items are re-sent with backoff; deletes go through it too),
// read with GetItem and Query: DynamoDBAPI is exactly those calls, and the
// stack grants exactly those actions.
package bardb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/symbol"
)

// DynamoDBAPI is the part of the DynamoDB client the store uses.
type DynamoDBAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// Sort-key prefixes and the partitions of the market's items. "#" sorts
// before every letter and digit, and neither partition is a valid symbol.
const (
	barPrefix     = "b#"
	ledgerPrefix  = "l#"
	recordKey     = "r#"
	sessionPrefix = "s#"
	nightPrefix   = "n#"
	marketKey     = "m#"
	claimPrefix   = "c#"
	// MarketKey is the partition of the sessions', nights' and market's
	// states; LedgerKey the partition of the ledger by date.
	MarketKey = "#market"
	LedgerKey = "#ledger"
)

// Attribute names besides the keys (deploy.AttrTicker, deploy.AttrDate) and
// the TTL (deploy.AttrExpiresAt). Short: there is one bar per ticker and
// session of the whole market.
const (
	attrOpen, attrHigh, attrLow, attrClose, attrVolume = "o", "h", "l", "c", "v"
	attrSource                                         = "src"
	attrKind, attrFrom, attrTo, attrID                 = "kind", "from", "to", "id"
	attrSymbol                                         = "sym"
	attrPerTicker, attrNoDataAt                        = "perTicker", "noDataAt"
	attrStatus, attrRows, attrBars                     = "status", "rows", "bars"
	attrFetchedAt, attrFinal                           = "fetchedAt", "final"
	attrParts, attrFallback, attrNight                 = "parts", "fallback", "night"
	attrTickerCalls, attrUpdatedAt                     = "tickerCalls", "updatedAt"
	attrOwner, attrUntil                               = "owner", "until"
	attrLedgerFrom, attrLedgerThrough                  = "ledgerFrom", "ledgerThrough"
	attrPlanFrom, attrClosures                         = "planFrom", "closures"
)

// SourceAggregates marks a bar a per-ticker call wrote; a bar of the grouped
// answer has no source attribute.
const SourceAggregates = "aggs"

// Retention is how long a bar, an adjustment, a session's and a night's
// state are kept after their date (their TTL): the window the indicators read
// (indicators.Lookback sessions, about 367 calendar days) and a month more.
const Retention = 400 * 24 * time.Hour

// maxBatch is the most requests one BatchWriteItem takes; writers is how
// many run at once for a session of the whole market (about 800 batches).
const (
	maxBatch = 25
	writers  = 8
)

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

// PutSessionBars stores one session's bars of every ticker of the grouped
// answer (as printed), overwriting the same ticker and date. A bar that
// cannot be stored (not a normalized symbol, prices marketdata.CheckPrices
// refuses) is a permanent error: the caller validated them.
func (s *Store) PutSessionBars(ctx context.Context, date string, bars map[string]marketdata.Bar) error {
	tickers := make([]string, 0, len(bars))
	for t := range bars {
		tickers = append(tickers, t)
	}
	slices.Sort(tickers)
	reqs := make([]types.WriteRequest, 0, len(bars))
	for _, t := range tickers {
		b := bars[t]
		if b.Date != date {
			return retry.Permanent(fmt.Errorf("bar of %s dated %s in the session of %s", t, b.Date, date))
		}
		it, err := marshalBar(t, b, "")
		if err != nil {
			return retry.Permanent(err)
		}
		reqs = append(reqs, put(it))
	}
	return s.batchWrite(ctx, "bars of "+date, reqs)
}

// PutTickerBars stores bars of one ticker from a per-ticker call, marked
// with SourceAggregates.
func (s *Store) PutTickerBars(ctx context.Context, ticker string, bars []marketdata.Bar) error {
	reqs := make([]types.WriteRequest, 0, len(bars))
	for _, b := range bars {
		it, err := marshalBar(ticker, b, SourceAggregates)
		if err != nil {
			return retry.Permanent(err)
		}
		reqs = append(reqs, put(it))
	}
	return s.batchWrite(ctx, "bars of "+ticker, reqs)
}

// TickerHistory reads, in one query, ticker's bars dated from one date to
// another (YYYY-MM-DD, both included), every adjustment of it in the
// ledger, and its record.
func (s *Store) TickerHistory(ctx context.Context, ticker, from, to string) (coverage.History, error) {
	var h coverage.History
	items, err := s.query(ctx, ticker, barPrefix+from, recordKey+"~", false)
	if err != nil {
		return h, fmt.Errorf("history of %s: %w", ticker, err)
	}
	for _, it := range items {
		key := str(it, deploy.AttrDate)
		switch {
		case strings.HasPrefix(key, barPrefix):
			date := key[len(barPrefix):]
			if date > to {
				continue
			}
			b, err := unmarshalBar(date, it)
			if err != nil {
				return h, fmt.Errorf("history of %s in %s: %w", ticker, s.table, err)
			}
			h.Bars = append(h.Bars, b)
		case strings.HasPrefix(key, ledgerPrefix):
			a, err := unmarshalAdjustment(ticker, key[len(ledgerPrefix):], it)
			if err != nil {
				return h, fmt.Errorf("ledger of %s in %s: %w", ticker, s.table, err)
			}
			h.Ledger = append(h.Ledger, a)
		case key == recordKey:
			h.Ticker = coverage.Ticker{PerTicker: str(it, attrPerTicker), NoDataAt: str(it, attrNoDataAt)}
		}
	}
	return h, nil
}

// PutTicker writes ticker's record.
func (s *Store) PutTicker(ctx context.Context, ticker string, rec coverage.Ticker) error {
	it := s.stamped(ticker, recordKey)
	setS(it, attrPerTicker, rec.PerTicker)
	setS(it, attrNoDataAt, rec.NoDataAt)
	return s.putItem(ctx, "record of "+ticker, it)
}

// Ledger returns the adjustments of every ticker dated from one date to
// another (both included), by date.
func (s *Store) Ledger(ctx context.Context, from, to string) ([]marketdata.Adjustment, error) {
	items, err := s.query(ctx, LedgerKey, from, to+"#~", false)
	if err != nil {
		return nil, fmt.Errorf("ledger %s..%s: %w", from, to, err)
	}
	out := make([]marketdata.Adjustment, 0, len(items))
	for _, it := range items {
		date, _, _ := strings.Cut(str(it, deploy.AttrDate), "#")
		a, err := unmarshalAdjustment(str(it, attrSymbol), date+"#", it)
		if err != nil {
			return nil, fmt.Errorf("ledger of %s: %w", s.table, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// ChangeLedger writes the adjustments of add (a ticker's copy, then the
// ledger's entry by date) and removes those of remove (in the same order).
// Each is keyed by ticker, date, kind and id: the same entry written again
// overwrites itself (given twice, or in both lists, it is written once); an
// entry whose date was corrected is a new one, and the old one is removed.
// An invalid adjustment is a permanent error.
func (s *Store) ChangeLedger(ctx context.Context, add, remove []marketdata.Adjustment) error {
	var copies, index []types.WriteRequest
	seen := map[string]bool{}
	fresh := func(a marketdata.Adjustment) bool {
		k := indexKey(a)
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	}
	for _, a := range add {
		if !fresh(a) {
			continue
		}
		if err := marketdata.ValidateAdjustment(a); err != nil || !symbol.Valid(a.Ticker) {
			return retry.Permanent(fmt.Errorf("ledger entry %+v: not a valid adjustment of a normalized symbol (%v)", a, err))
		}
		it := adjustmentAttrs(a)
		it[deploy.AttrTicker], it[deploy.AttrDate] = sAttr(a.Ticker), sAttr(ledgerPrefix+adjustmentKey(a))
		copies = append(copies, put(it))
		ix := adjustmentAttrs(a)
		ix[deploy.AttrTicker], ix[deploy.AttrDate], ix[attrSymbol] = sAttr(LedgerKey), sAttr(indexKey(a)), sAttr(a.Ticker)
		index = append(index, put(ix))
	}
	for _, a := range remove {
		if !fresh(a) {
			continue
		}
		copies = append(copies, del(a.Ticker, ledgerPrefix+adjustmentKey(a)))
		index = append(index, del(LedgerKey, indexKey(a)))
	}
	if err := s.batchWrite(ctx, "ledger (tickers' copies)", copies); err != nil {
		return err
	}
	return s.batchWrite(ctx, "ledger", index)
}

// adjustmentKey is date#kind#id: an adjustment's key in its ticker's
// partition, after ledgerPrefix.
func adjustmentKey(a marketdata.Adjustment) string {
	return a.Date + "#" + string(a.Kind) + "#" + a.ID
}

// indexKey is date#ticker#kind#id: its key in the ledger by date.
func indexKey(a marketdata.Adjustment) string {
	return a.Date + "#" + a.Ticker + "#" + string(a.Kind) + "#" + a.ID
}

func adjustmentAttrs(a marketdata.Adjustment) map[string]types.AttributeValue {
	it := map[string]types.AttributeValue{attrKind: sAttr(string(a.Kind)), attrFrom: nAttr(a.From), attrTo: nAttr(a.To)}
	setS(it, attrID, a.ID)
	if start, err := marketdata.SessionStart(a.Date); err == nil {
		it[deploy.AttrExpiresAt] = &types.AttributeValueMemberN{Value: strconv.FormatInt(start.Add(Retention).Unix(), 10)}
	}
	return it
}

// unmarshalAdjustment reads an adjustment of ticker whose key (after its
// prefix) starts with its date and "#".
func unmarshalAdjustment(ticker, key string, it map[string]types.AttributeValue) (marketdata.Adjustment, error) {
	date, _, _ := strings.Cut(key, "#")
	a := marketdata.Adjustment{Ticker: ticker, Date: date, Kind: marketdata.AdjustmentKind(str(it, attrKind)), ID: str(it, attrID)}
	var err error
	if a.From, err = num(it, attrFrom); err == nil {
		a.To, err = num(it, attrTo)
	}
	if err == nil {
		err = marketdata.ValidateAdjustment(a)
	}
	return a, err
}

// Session returns the state of one session, and false when none is stored.
func (s *Store) Session(ctx context.Context, date string) (coverage.Session, bool, error) {
	it, err := s.getItem(ctx, MarketKey, sessionPrefix+date)
	if err != nil || it == nil {
		return coverage.Session{}, false, err
	}
	return unmarshalSession(date, it), true, nil
}

// Sessions returns the states of the sessions from one date to another
// (both included) that have one, by date.
func (s *Store) Sessions(ctx context.Context, from, to string) (map[string]coverage.Session, error) {
	items, err := s.query(ctx, MarketKey, sessionPrefix+from, sessionPrefix+to, true)
	if err != nil {
		return nil, fmt.Errorf("sessions %s..%s: %w", from, to, err)
	}
	out := make(map[string]coverage.Session, len(items))
	for _, it := range items {
		date := strings.TrimPrefix(str(it, deploy.AttrDate), sessionPrefix)
		out[date] = unmarshalSession(date, it)
	}
	return out, nil
}

// PutSession writes the state of a session, whole: the one consumer that
// holds the session's claim writes it (pkg/pipeline).
func (s *Store) PutSession(ctx context.Context, st coverage.Session) error {
	it := s.stamped(MarketKey, sessionPrefix+st.Date)
	it[attrStatus], it[attrRows], it[attrBars] = sAttr(string(st.Status)), nAttr(float64(st.Rows)), nAttr(float64(st.Bars))
	it[attrFinal] = &types.AttributeValueMemberBOOL{Value: st.Final}
	if !st.FetchedAt.IsZero() {
		it[attrFetchedAt] = sAttr(st.FetchedAt.UTC().Format(time.RFC3339))
	}
	setS(it, attrNight, st.Night)
	expire(it, st.Date)
	return s.putItem(ctx, "state of session "+st.Date, it)
}

func unmarshalSession(date string, it map[string]types.AttributeValue) coverage.Session {
	st := coverage.Session{Date: date, Status: coverage.Status(str(it, attrStatus))}
	rows, _ := num(it, attrRows)
	bars, _ := num(it, attrBars)
	st.Rows, st.Bars = int(rows), int(bars)
	st.FetchedAt, _ = time.Parse(time.RFC3339, str(it, attrFetchedAt))
	st.Night = str(it, attrNight)
	if b, ok := it[attrFinal].(*types.AttributeValueMemberBOOL); ok {
		st.Final = b.Value
	}
	return st
}

// Night returns the state of a night (by its trading day), and false when
// none is stored.
func (s *Store) Night(ctx context.Context, date string) (coverage.Night, bool, error) {
	it, err := s.getItem(ctx, MarketKey, nightPrefix+date)
	if err != nil || it == nil {
		return coverage.Night{}, false, err
	}
	n := coverage.Night{Date: date}
	if ss, ok := it[attrParts].(*types.AttributeValueMemberSS); ok {
		n.Parts = slices.Sorted(slices.Values(ss.Value))
	}
	if b, ok := it[attrFallback].(*types.AttributeValueMemberBOOL); ok {
		n.Fallback = b.Value
	}
	calls, _ := num(it, attrTickerCalls)
	n.TickerCalls = int(calls)
	n.UpdatedAt, _ = time.Parse(time.RFC3339, str(it, attrUpdatedAt))
	return n, true, nil
}

// AddNightPart records the day message part done on the night of date,
// merged with the parts of the other message groups.
func (s *Store) AddNightPart(ctx context.Context, date, part string) error {
	_, err := s.update(ctx, "state of the night of "+date, nightPrefix+date, date, "ADD #v :v",
		map[string]string{"#v": attrParts}, map[string]types.AttributeValue{":v": &types.AttributeValueMemberSS{Value: []string{part}}}, "")
	return err
}

// SetFallback records that the night of date has no grouped answer (the
// plan does not include it).
func (s *Store) SetFallback(ctx context.Context, date string) error {
	_, err := s.update(ctx, "state of the night of "+date, nightPrefix+date, date, "SET #v = :v",
		map[string]string{"#v": attrFallback}, map[string]types.AttributeValue{":v": &types.AttributeValueMemberBOOL{Value: true}}, "")
	return err
}

// TakeTickerCall counts one per-ticker call on the night of date unless
// bound are counted already, atomically across consumers: false (and
// nothing counted) when the night's calls are spent.
func (s *Store) TakeTickerCall(ctx context.Context, date string, bound int) (bool, error) {
	return s.update(ctx, "per-ticker calls of the night of "+date, nightPrefix+date, date, "ADD #v :one",
		map[string]string{"#v": attrTickerCalls}, map[string]types.AttributeValue{":one": nAttr(1), ":bound": nAttr(float64(bound))},
		"attribute_not_exists(#v) OR #v < :bound")
}

// Market returns the market's state (zero when none is stored).
func (s *Store) Market(ctx context.Context) (coverage.Market, error) {
	it, err := s.getItem(ctx, MarketKey, marketKey)
	if err != nil || it == nil {
		return coverage.Market{}, err
	}
	m := coverage.Market{LedgerFrom: str(it, attrLedgerFrom), LedgerThrough: str(it, attrLedgerThrough), PlanFrom: str(it, attrPlanFrom)}
	if cl, ok := it[attrClosures].(*types.AttributeValueMemberM); ok {
		for date, reason := range cl.Value {
			if r, ok := reason.(*types.AttributeValueMemberS); ok {
				m.Closures = append(m.Closures, marketdata.Closure{Date: date, Reason: r.Value})
			}
		}
		slices.SortFunc(m.Closures, func(a, b marketdata.Closure) int { return strings.Compare(a.Date, b.Date) })
	}
	return m, nil
}

// SetLedger records that the ledger holds every split the provider lists
// with an execution date from one date through another. The range only
// moves forward: a check older than the one recorded changes nothing.
func (s *Store) SetLedger(ctx context.Context, from, through string) error {
	_, err := s.update(ctx, "market state", marketKey, "", "SET #f = :f, #t = :t",
		map[string]string{"#f": attrLedgerFrom, "#t": attrLedgerThrough}, map[string]types.AttributeValue{":f": sAttr(from), ":t": sAttr(through)},
		"attribute_not_exists(#t) OR #t <= :t")
	return err
}

// MovePlanFrom records date as the first session the plan's history
// reaches. It only moves forward.
func (s *Store) MovePlanFrom(ctx context.Context, date string) error {
	_, err := s.update(ctx, "market state", marketKey, "", "SET #p = :p",
		map[string]string{"#p": attrPlanFrom}, map[string]types.AttributeValue{":p": sAttr(date)},
		"attribute_not_exists(#p) OR #p < :p")
	return err
}

// AddClosure records a closure of the exchange learnt from the provider,
// merged into the map of closures by its date.
func (s *Store) AddClosure(ctx context.Context, c marketdata.Closure) error {
	// A nested attribute can be set only once its map exists: two merges.
	if _, err := s.update(ctx, "market state", marketKey, "", "SET #c = if_not_exists(#c, :empty)",
		map[string]string{"#c": attrClosures}, map[string]types.AttributeValue{":empty": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{}}}, ""); err != nil {
		return err
	}
	_, err := s.update(ctx, "closure "+c.Date, marketKey, "", "SET #c.#d = :r",
		map[string]string{"#c": attrClosures, "#d": c.Date}, map[string]types.AttributeValue{":r": sAttr(c.Reason)}, "")
	return err
}

// Claim takes, or renews, the lease of owner on the work called name until
// a time: one consumer at a time does it while the others wait for its
// result (pkg/pipeline). It fails (false, nil) while another owner's lease
// runs at now; an expired lease is taken over (its owner stopped).
func (s *Store) Claim(ctx context.Context, name, owner string, now, until time.Time) (bool, error) {
	return s.update(ctx, "claim "+name, claimPrefix+name, "", "SET #o = :o, #u = :u, #x = :x",
		map[string]string{"#o": attrOwner, "#u": attrUntil, "#x": deploy.AttrExpiresAt},
		map[string]types.AttributeValue{":o": sAttr(owner), ":u": nAttr(float64(until.UnixMilli())), ":now": nAttr(float64(now.UnixMilli())),
			// Kept a day past its lease, then removed by the TTL.
			":x": &types.AttributeValueMemberN{Value: strconv.FormatInt(until.Add(24*time.Hour).Unix(), 10)}},
		"attribute_not_exists(#o) OR #o = :o OR #u < :now")
}

// Release ends owner's lease on the work called name, if it still holds it.
func (s *Store) Release(ctx context.Context, name, owner string) error {
	_, err := s.update(ctx, "claim "+name, claimPrefix+name, "", "REMOVE #o, #u",
		map[string]string{"#o": attrOwner, "#u": attrUntil}, map[string]types.AttributeValue{":o": sAttr(owner)}, "#o = :o")
	return err
}

// update merges one item of the market partition: expr (SET, ADD, REMOVE)
// and updatedAt — and, for a state dated date, its TTL —, under cond when
// given. A failed condition is (false, nil): the merge was not wanted.
func (s *Store) update(ctx context.Context, what, sk, date, expr string, names map[string]string, values map[string]types.AttributeValue, cond string) (bool, error) {
	names["#updatedAt"] = attrUpdatedAt
	values[":updatedAt"] = sAttr(s.now().UTC().Format(time.RFC3339))
	set := "#updatedAt = :updatedAt"
	if start, err := marketdata.SessionStart(date); err == nil {
		names["#expiresAt"] = deploy.AttrExpiresAt
		values[":expiresAt"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(start.Add(Retention).Unix(), 10)}
		set += ", #expiresAt = :expiresAt"
	}
	if rest, ok := strings.CutPrefix(expr, "SET "); ok {
		expr = "SET " + set + ", " + rest
	} else {
		expr = "SET " + set + " " + expr
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       map[string]types.AttributeValue{deploy.AttrTicker: sAttr(MarketKey), deploy.AttrDate: sAttr(sk)},
		UpdateExpression:          aws.String(expr),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
	}
	if cond != "" {
		in.ConditionExpression = aws.String(cond)
	}
	if _, err := s.client.UpdateItem(ctx, in); err != nil {
		var failed *types.ConditionalCheckFailedException
		if errors.As(err, &failed) {
			return false, nil
		}
		return false, classify(fmt.Errorf("update %s in %s: %w", what, s.table, err))
	}
	return true, nil
}

// stamped is a new item with its keys and updatedAt.
func (s *Store) stamped(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		deploy.AttrTicker: sAttr(pk), deploy.AttrDate: sAttr(sk), attrUpdatedAt: sAttr(s.now().UTC().Format(time.RFC3339)),
	}
}

// expire sets the TTL of a state dated date: Retention after it.
func expire(it map[string]types.AttributeValue, date string) {
	if start, err := marketdata.SessionStart(date); err == nil {
		it[deploy.AttrExpiresAt] = &types.AttributeValueMemberN{Value: strconv.FormatInt(start.Add(Retention).Unix(), 10)}
	}
}

// query reads every item of partition pk with a sort key from lo to hi
// (both included), following pages; consistently when asked (the states
// another consumer may just have written).
func (s *Store) query(ctx context.Context, pk, lo, hi string, consistent bool) ([]map[string]types.AttributeValue, error) {
	in := &dynamodb.QueryInput{
		TableName:                aws.String(s.table),
		ConsistentRead:           aws.Bool(consistent),
		KeyConditionExpression:   aws.String("#t = :t AND #d BETWEEN :lo AND :hi"),
		ExpressionAttributeNames: map[string]string{"#t": deploy.AttrTicker, "#d": deploy.AttrDate},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":t": sAttr(pk), ":lo": sAttr(lo), ":hi": sAttr(hi),
		},
	}
	var out []map[string]types.AttributeValue
	p := dynamodb.NewQueryPaginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, classify(fmt.Errorf("query %s %s..%s in %s: %w", pk, lo, hi, s.table, err))
		}
		out = append(out, page.Items...)
	}
	return out, nil
}

// getItem reads one item consistently: the states of the market partition,
// which the consumers of other message groups may just have written.
func (s *Store) getItem(ctx context.Context, pk, sk string) (map[string]types.AttributeValue, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		ConsistentRead: aws.Bool(true),
		Key:            map[string]types.AttributeValue{deploy.AttrTicker: sAttr(pk), deploy.AttrDate: sAttr(sk)},
	})
	if err != nil {
		return nil, classify(fmt.Errorf("get %s %s from %s: %w", pk, sk, s.table, err))
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return out.Item, nil
}

func (s *Store) putItem(ctx context.Context, what string, it map[string]types.AttributeValue) error {
	if _, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: it}); err != nil {
		return classify(fmt.Errorf("put %s into %s: %w", what, s.table, err))
	}
	return nil
}

// batchWrite sends reqs in batches of 25, up to writers at once, re-sending
// what DynamoDB leaves unprocessed (throttling) with backoff. What is still
// unprocessed when the attempts run out is a transient error; the first
// error stops the batches not yet sent.
func (s *Store) batchWrite(ctx context.Context, what string, reqs []types.WriteRequest) error {
	if len(reqs) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []types.WriteRequest)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range min(writers, (len(reqs)+maxBatch-1)/maxBatch) {
		wg.Go(func() {
			for b := range batches {
				if err := s.writeBatch(ctx, b); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
			}
		})
	}
	for start := 0; start < len(reqs) && ctx.Err() == nil; start += maxBatch {
		select {
		case batches <- reqs[start:min(start+maxBatch, len(reqs))]:
		case <-ctx.Done():
		}
	}
	close(batches)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return fmt.Errorf("%s in %s: %w", what, s.table, firstErr)
	}
	return nil
}

// writeBatch sends one batch until DynamoDB has processed all of it.
func (s *Store) writeBatch(ctx context.Context, pending []types.WriteRequest) error {
	policy := s.Retry
	if policy.Attempts == 0 {
		policy = DefaultRetry
	}
	_, err := policy.Do(ctx, func(ctx context.Context, _ int) error {
		out, err := s.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{s.table: pending},
		})
		if err != nil {
			// The SDK has retried the call itself: do not retry here. A
			// request DynamoDB refuses stays permanent for the caller.
			if refusedRequest(err) {
				return retry.Permanent(fmt.Errorf("batch of %d items %s: %w", len(pending), batchKeys(pending), err))
			}
			return retry.Permanent(err)
		}
		pending = out.UnprocessedItems[s.table]
		if len(pending) > 0 {
			return retry.Transient(fmt.Errorf("%d items unprocessed", len(pending)), 0)
		}
		return nil
	})
	var re *retry.Error
	if err != nil && errors.As(err, &re) && retry.IsPermanent(err) && !refusedRequest(err) {
		err = re.Err // the SDK's error, unclassified: transient to the caller
	}
	return err
}

// batchKeys names the items of a batch by their first and last keys (a
// refused batch does not say which of its items DynamoDB refused).
func batchKeys(reqs []types.WriteRequest) string {
	key := func(r types.WriteRequest) string {
		k := map[string]types.AttributeValue(nil)
		switch {
		case r.PutRequest != nil:
			k = r.PutRequest.Item
		case r.DeleteRequest != nil:
			k = r.DeleteRequest.Key
		}
		return str(k, deploy.AttrTicker) + " " + str(k, deploy.AttrDate)
	}
	if len(reqs) == 0 {
		return ""
	}
	return "from " + key(reqs[0]) + " to " + key(reqs[len(reqs)-1])
}

// refusedRequest reports whether DynamoDB refused the request itself: a 4xx
// answer other than throttling (a ValidationException — a number beyond the
// range DynamoDB stores, an item too large —, a missing table, a denied
// action). Sending the same request again cannot succeed. Throttling, an
// expired token (the SDK refreshes its credentials), 5xx answers and
// transport errors are worth another attempt.
func refusedRequest(err error) bool {
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() < 400 || re.HTTPStatusCode() > 499 {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		_, throttled := awsretry.DefaultThrottleErrorCodes[code]
		_, retryable := awsretry.DefaultRetryableErrorCodes[code]
		if throttled || retryable || code == "ExpiredTokenException" {
			return false
		}
	}
	return true
}

// classify marks err (which names what was sent) permanent when DynamoDB
// refused the request itself (refusedRequest); any other error stays
// unclassified: transient to the caller.
func classify(err error) error {
	if refusedRequest(err) {
		return retry.Permanent(err)
	}
	return err
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

func del(pk, sk string) types.WriteRequest {
	return types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: map[string]types.AttributeValue{
		deploy.AttrTicker: sAttr(pk), deploy.AttrDate: sAttr(sk),
	}}}
}

// marshalBar is the item of a bar: its prices as exact decimal numbers, its
// source when not the grouped answer, and a TTL of Retention after its date.
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
	it := map[string]types.AttributeValue{
		deploy.AttrTicker: sAttr(ticker), deploy.AttrDate: sAttr(barPrefix + b.Date),
		attrOpen: nAttr(b.Open), attrHigh: nAttr(b.High), attrLow: nAttr(b.Low), attrClose: nAttr(b.Close), attrVolume: nAttr(b.Volume),
		deploy.AttrExpiresAt: &types.AttributeValueMemberN{Value: strconv.FormatInt(start.Add(Retention).Unix(), 10)},
	}
	setS(it, attrSource, source)
	return it, nil
}

func unmarshalBar(date string, it map[string]types.AttributeValue) (marketdata.Bar, error) {
	start, err := marketdata.SessionStart(date)
	if err != nil {
		return marketdata.Bar{}, fmt.Errorf("item with sort key %q: %w", barPrefix+date, err)
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

func setS(it map[string]types.AttributeValue, name, v string) {
	if v != "" {
		it[name] = sAttr(v)
	}
}

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
