// Package analysisdb is the repository of portfolio-analyses-{stage}: one item
// per analysis run of a portfolio (an analysis.Record), keyed by the
// portfolio name and the run's RFC 3339 UTC instant. The item holds the
// human-readable analysis, the validated structured result (parsed_data, a
// DynamoDB map) and the audit fields that say how it was produced.
// docs/analysis.md documents them.
//
// Every item fits DynamoDB's 400 KB by construction: a record whose
// tickers do not fit one item keeps as many as fit in it (in symbol order)
// and the rest in part items, written first, under a partition key no
// portfolio can have (the name and a control character), so that no query
// of a portfolio ever returns a part.
package analysisdb

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

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/dynamoitem"
	"github.com/zsmseven/backend/pkg/retry"
)

// Attribute names of an item besides the keys (deploy.AttrPortfolio,
// deploy.AttrTimestamp).
const (
	AttrAnalysis          = "analysis"
	AttrModel             = "model"
	AttrManager           = "manager"
	AttrDataAsOf          = "dataAsOf"
	AttrParsedData        = "parsed_data"
	AttrPromptVersion     = "promptVersion"
	AttrPromptSHA256      = "promptSha256"
	AttrInputHash         = "inputHash"
	AttrRequestedModel    = "requestedModel"
	AttrSystemFingerprint = "systemFingerprint"
	AttrUsage             = "usage"
	AttrCostUSD           = "costUsd"
	AttrLatencyMs         = "latencyMs"
	AttrAttempts          = "attempts"
	AttrCalls             = "calls"
	AttrStatus            = "status"
	AttrReason            = "reason"
	AttrExcluded          = "excludedSymbols"
	AttrOmitted           = "omittedPositions"
	// AttrParts counts the part items holding the tickers that did not fit
	// the item; AttrTickers is a part's list of them.
	AttrParts   = "tickerParts"
	AttrTickers = "tickers"
)

// MaxItemBytes is the size budget of an item, below DynamoDB's 400 KB
// (attribute names included).
const MaxItemBytes = 380_000

// MaxExcluded is how many rejected symbols an item lists; more are counted
// in one last entry.
const MaxExcluded = 100

// partSuffix ends the partition key of a record's part items: a control
// character, which no portfolio name has (analysis.ValidatePortfolioName).
const partSuffix = "\u001fparts"

// DynamoDBAPI is the part of the DynamoDB client the repository uses.
type DynamoDBAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

var _ DynamoDBAPI = (*dynamodb.Client)(nil)

// Repository reads and writes portfolio-analyses-{stage}.
type Repository struct {
	client DynamoDBAPI
	table  string
}

// New returns a repository over the table (deploy.PortfolioAnalyses.Name(stage)).
func New(client DynamoDBAPI, table string) *Repository {
	return &Repository{client: client, table: table}
}

// ErrExists means an item with the same portfolio and timestamp exists.
var ErrExists = errors.New("an analysis with this portfolio and timestamp already exists")

// Put stores it: its part items first (when its tickers do not fit one
// item), then the item. It never overwrites: two runs in the same
// millisecond give ErrExists for the second, rather than one silently
// replacing the other.
func (r *Repository) Put(ctx context.Context, it analysis.Record) error {
	item, parts, err := marshal(it)
	if err != nil {
		return retry.Permanent(fmt.Errorf("store analysis of %q: %w", it.Portfolio, err))
	}
	for _, p := range parts {
		if _, err := r.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(r.table), Item: p}); err != nil {
			return fmt.Errorf("store a part of the analysis of %q in %s: %w", it.Portfolio, r.table, err)
		}
	}
	_, err = r.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(r.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#p)"),
		ExpressionAttributeNames: map[string]string{"#p": deploy.AttrPortfolio},
	})
	var cond *types.ConditionalCheckFailedException
	if errors.As(err, &cond) {
		return retry.Permanent(fmt.Errorf("store analysis of %q at %s: %w", it.Portfolio, FormatTime(it.Timestamp), ErrExists))
	}
	if err != nil {
		return fmt.Errorf("store analysis of %q in %s: %w", it.Portfolio, r.table, err)
	}
	return nil
}

// ErrUnreadable is wrapped by Recent's error when some stored items could
// not be decoded; the items that could are still returned.
var ErrUnreadable = analysis.ErrUnreadable

// Recent returns the newest items of a portfolio, newest first, at most limit.
// Items that cannot be decoded (written by hand or by another version) are
// left out and named in an error wrapping ErrUnreadable, returned together
// with the readable items, so one bad item cannot hide the others.
func (r *Repository) Recent(ctx context.Context, portfolio string, limit int) ([]analysis.Record, error) {
	out, err := r.client.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(r.table),
		KeyConditionExpression:    aws.String("#p = :p"),
		ExpressionAttributeNames:  map[string]string{"#p": deploy.AttrPortfolio},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": &types.AttributeValueMemberS{Value: portfolio}},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(max(limit, 1))),
	})
	if err != nil {
		return nil, fmt.Errorf("query analyses of %q in %s: %w", portfolio, r.table, err)
	}
	items := make([]analysis.Record, 0, len(out.Items))
	var bad []error
	for _, raw := range out.Items {
		it, parts, err := unmarshal(raw)
		if err == nil && parts > 0 {
			err = r.readParts(ctx, &it, parts)
		}
		if err != nil {
			ts, _ := raw[deploy.AttrTimestamp].(*types.AttributeValueMemberS)
			at := "?"
			if ts != nil {
				at = ts.Value
			}
			bad = append(bad, fmt.Errorf("%w: %q at %s: %w", ErrUnreadable, portfolio, at, err))
			continue
		}
		items = append(items, it)
	}
	return items, errors.Join(bad...)
}

// readParts appends the tickers of a record's part items.
func (r *Repository) readParts(ctx context.Context, it *analysis.Record, parts int) error {
	ts := FormatTime(it.Timestamp)
	p := dynamodb.NewQueryPaginator(r.client, &dynamodb.QueryInput{
		TableName:                 aws.String(r.table),
		KeyConditionExpression:    aws.String("#p = :p AND begins_with(#t, :t)"),
		ExpressionAttributeNames:  map[string]string{"#p": deploy.AttrPortfolio, "#t": deploy.AttrTimestamp},
		ExpressionAttributeValues: map[string]types.AttributeValue{":p": s(it.Portfolio + partSuffix), ":t": s(ts + "#")},
		ConsistentRead:            aws.Bool(true),
	})
	found := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("read the parts of the analysis of %q at %s: %w", it.Portfolio, ts, err)
		}
		for _, raw := range out.Items {
			rd := dynamoitem.NewReader(raw)
			ts := readTickers(rd, AttrTickers)
			if rd.Err != nil {
				return rd.Err
			}
			it.Result.Tickers = append(it.Result.Tickers, ts...)
			found++
		}
	}
	if found != parts {
		return fmt.Errorf("analysis of %q at %s: %d of its %d parts found", it.Portfolio, ts, found, parts)
	}
	return nil
}

// TimeFormat is the layout of the timestamp sort key: RFC 3339 in UTC with a
// fixed millisecond fraction, e.g. 2026-11-28T06:00:00.000Z.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime renders t as a timestamp sort key.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func n(v float64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatFloat(v, 'f', -1, 64)}
}

func ni(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func list(vs []string) types.AttributeValue {
	l := make([]types.AttributeValue, len(vs))
	for i, v := range vs {
		l[i] = s(v)
	}
	return &types.AttributeValueMemberL{Value: l}
}

// TickerValue writes a ticker verdict as a map: ticker, score, signal,
// rationale, confidence, key_risk, action, and raw_score and source when
// set (ReadTicker reads it).
func TickerValue(t analysis.TickerScore) types.AttributeValue {
	m := map[string]types.AttributeValue{
		"ticker": s(t.Ticker), "score": ni(int64(t.Score)), "signal": s(t.Signal), "rationale": s(t.Rationale),
		"confidence": s(t.Confidence), "key_risk": s(t.KeyRisk), "action": s(t.Action),
	}
	if t.RawScore != nil {
		m["raw_score"] = ni(int64(*t.RawScore))
	}
	if t.Source != "" {
		m["source"] = s(t.Source)
	}
	return &types.AttributeValueMemberM{Value: m}
}

// marshal renders a record as its item and, when its tickers do not all fit
// the item's budget, the part items holding the others (in order).
func marshal(it analysis.Record) (map[string]types.AttributeValue, []map[string]types.AttributeValue, error) {
	if it.Portfolio == "" || it.Timestamp.IsZero() {
		return nil, nil, errors.New("portfolio and timestamp are required")
	}
	if it.Status != analysis.StatusOK && it.Status != analysis.StatusFallback {
		return nil, nil, fmt.Errorf("status %q is not %q or %q", it.Status, analysis.StatusOK, analysis.StatusFallback)
	}
	tops := make([]types.AttributeValue, len(it.Result.TopActions))
	for i, a := range it.Result.TopActions {
		tops[i] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"ticker": s(a.Ticker), "action": s(a.Action), "reason": s(a.Reason)}}
	}
	excluded := orEmpty(it.Excluded)
	if len(excluded) > MaxExcluded {
		excluded = append(slices.Clone(excluded[:MaxExcluded-1]), fmt.Sprintf("… and %d more", len(excluded)-MaxExcluded+1))
	}
	tickers := &types.AttributeValueMemberL{Value: []types.AttributeValue{}}
	item := map[string]types.AttributeValue{
		deploy.AttrPortfolio: s(it.Portfolio),
		deploy.AttrTimestamp: s(FormatTime(it.Timestamp)),
		AttrAnalysis:         s(it.Analysis),
		AttrModel:            s(it.Model),
		AttrDataAsOf:         s(it.DataAsOf),
		AttrParsedData: &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"summary":             s(it.Result.Summary),
			"overall_risk":        s(it.Result.OverallRisk),
			"concentration_flags": list(orEmpty(it.Result.ConcentrationFlags)),
			"top_actions":         &types.AttributeValueMemberL{Value: tops},
			"tickers":             tickers,
			"missing":             list(orEmpty(it.Missing)),
			"stale":               list(orEmpty(it.Stale)),
		}},
		AttrPromptVersion:  s(it.PromptVersion),
		AttrPromptSHA256:   s(it.PromptSHA256),
		AttrInputHash:      s(it.InputHash),
		AttrRequestedModel: s(it.RequestedModel),
		AttrUsage: &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"promptTokens": ni(int64(it.Usage.PromptTokens)), "cachedPromptTokens": ni(int64(it.Usage.CachedPromptTokens)),
			"completionTokens": ni(int64(it.Usage.CompletionTokens)),
			"totalTokens":      ni(int64(it.Usage.TotalTokens)), "reasoningTokens": ni(int64(it.Usage.ReasoningTokens)),
		}},
		AttrLatencyMs: ni(it.LatencyMs),
		AttrAttempts:  ni(int64(it.Attempts)),
		AttrCalls:     ni(int64(it.Calls)),
		AttrStatus:    s(it.Status),
		AttrExcluded:  list(excluded),
	}
	for name, v := range map[string]string{AttrSystemFingerprint: it.SystemFingerprint, AttrReason: it.Reason, AttrManager: it.Manager} {
		if v != "" {
			item[name] = s(v)
		}
	}
	if it.Omitted > 0 {
		item[AttrOmitted] = ni(int64(it.Omitted))
	}
	if c := it.Usage.CostUSD; c != nil {
		if math.IsNaN(*c) || math.IsInf(*c, 0) {
			return nil, nil, errors.New("cost is not a finite number")
		}
		item[AttrCostUSD] = n(*c)
	}
	// The parts' count is written last; reserve its room now.
	item[AttrParts] = ni(0)
	size := dynamoitem.Size(item)
	if size > MaxItemBytes {
		return nil, nil, fmt.Errorf("analysis of %q: %d bytes without its tickers: %w", it.Portfolio, size, ErrTooLarge)
	}
	rest := it.Result.Tickers
	for len(rest) > 0 {
		v := TickerValue(rest[0])
		if size+1+dynamoitem.Size(map[string]types.AttributeValue{"": v}) > MaxItemBytes {
			break
		}
		size += 1 + dynamoitem.Size(map[string]types.AttributeValue{"": v})
		tickers.Value = append(tickers.Value, v)
		rest = rest[1:]
	}
	var parts []map[string]types.AttributeValue
	for len(rest) > 0 {
		l := &types.AttributeValueMemberL{Value: []types.AttributeValue{}}
		part := map[string]types.AttributeValue{
			deploy.AttrPortfolio: s(it.Portfolio + partSuffix),
			deploy.AttrTimestamp: s(fmt.Sprintf("%s#%03d", FormatTime(it.Timestamp), len(parts)+1)),
			AttrTickers:          l,
		}
		psize := dynamoitem.Size(part)
		for len(rest) > 0 {
			v := TickerValue(rest[0])
			if len(l.Value) > 0 && psize+1+dynamoitem.Size(map[string]types.AttributeValue{"": v}) > MaxItemBytes {
				break
			}
			psize += 1 + dynamoitem.Size(map[string]types.AttributeValue{"": v})
			l.Value = append(l.Value, v)
			rest = rest[1:]
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		delete(item, AttrParts)
	} else {
		item[AttrParts] = ni(int64(len(parts)))
	}
	return item, parts, nil
}

// ErrTooLarge means a record cannot be stored within the item budget even
// without its tickers (which go to parts): its other fields are bounded by
// the parsers, so this is a fault of the code, not of the data.
var ErrTooLarge = errors.New("analysis over the item budget")

func orEmpty(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// ReadTicker reads a ticker verdict written by TickerValue; r records a
// problem.
func ReadTicker(r *dynamoitem.Reader) analysis.TickerScore {
	ts := analysis.TickerScore{Ticker: r.Str("ticker"), Score: int(r.Int("score")), Signal: r.Str("signal"), Rationale: r.Str("rationale"),
		Confidence: r.Str("confidence"), KeyRisk: r.Str("key_risk"), Action: r.Str("action"), Source: r.Str("source")}
	if _, ok := r.M["raw_score"]; ok {
		v := int(r.Int("raw_score"))
		ts.RawScore = &v
	}
	return ts
}

// readTickers reads the list of ticker verdicts of attribute name.
func readTickers(r *dynamoitem.Reader, name string) []analysis.TickerScore {
	var out []analysis.TickerScore
	for _, tr := range r.Maps(name) {
		out = append(out, ReadTicker(tr))
	}
	return out
}

// unmarshal reads an item; parts is its count of part items.
func unmarshal(m map[string]types.AttributeValue) (analysis.Record, int, error) {
	r := dynamoitem.NewReader(m)
	it := analysis.Record{
		Portfolio: r.Str(deploy.AttrPortfolio), Analysis: r.Str(AttrAnalysis), Model: r.Str(AttrModel), Manager: r.Str(AttrManager), DataAsOf: r.Str(AttrDataAsOf),
		PromptVersion: r.Str(AttrPromptVersion), PromptSHA256: r.Str(AttrPromptSHA256), InputHash: r.Str(AttrInputHash),
		RequestedModel: r.Str(AttrRequestedModel), SystemFingerprint: r.Str(AttrSystemFingerprint),
		LatencyMs: r.Int(AttrLatencyMs), Attempts: int(r.Int(AttrAttempts)), Calls: int(r.Int(AttrCalls)), Status: r.Str(AttrStatus), Reason: r.Str(AttrReason),
		Excluded: orEmpty(r.Strs(AttrExcluded)), Omitted: int(r.Int(AttrOmitted)),
	}
	parts := int(r.Int(AttrParts))
	ts, err := time.Parse(time.RFC3339, r.Str(deploy.AttrTimestamp))
	if err != nil {
		r.Fail(deploy.AttrTimestamp, err.Error())
	}
	it.Timestamp = ts
	u := r.Sub(AttrUsage)
	it.Usage = analysis.Usage{PromptTokens: int(u.Int("promptTokens")), CachedPromptTokens: int(u.Int("cachedPromptTokens")),
		CompletionTokens: int(u.Int("completionTokens")), TotalTokens: int(u.Int("totalTokens")), ReasoningTokens: int(u.Int("reasoningTokens"))}
	if c, ok := r.Num(AttrCostUSD); ok {
		it.Usage.CostUSD = &c
	}
	pd := r.Sub(AttrParsedData)
	// Items of earlier prompt versions lack the fields added since: they
	// read as empty.
	it.Result.Summary = pd.Str("summary")
	it.Result.OverallRisk = pd.Str("overall_risk")
	it.Result.ConcentrationFlags = orEmpty(pd.Strs("concentration_flags"))
	for _, tr := range pd.Maps("top_actions") {
		it.Result.TopActions = append(it.Result.TopActions, analysis.TopAction{Ticker: tr.Str("ticker"), Action: tr.Str("action"), Reason: tr.Str("reason")})
	}
	it.Result.Analysis = it.Analysis
	it.Missing, it.Stale = orEmpty(pd.Strs("missing")), orEmpty(pd.Strs("stale"))
	it.Result.Tickers = readTickers(pd, "tickers")
	if r.Err != nil {
		return analysis.Record{}, 0, r.Err
	}
	return it, parts, nil
}
