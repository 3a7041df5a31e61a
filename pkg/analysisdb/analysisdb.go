// Package analysisdb is the repository of portfolio-analyses-{stage}: one item
// per analysis run of a portfolio, keyed by the portfolio name and the run's
// RFC 3339 UTC instant. The item holds the human-readable analysis, the
// validated structured result (parsed_data, a DynamoDB map) and the audit
// fields that say how it was produced. docs/analysis.md documents them.
package analysisdb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/retry"
)

// Status of an analysis.
const (
	// StatusOK: the model's answer, validated.
	StatusOK = "ok"
	// StatusFallback: the rules analyst's result; Reason says why.
	StatusFallback = "fallback"
)

// Attribute names of an item besides the keys (deploy.AttrPortfolio,
// deploy.AttrTimestamp).
const (
	AttrAnalysis          = "analysis"
	AttrModel             = "model"
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
)

// Usage is the token usage of the run (all model calls summed).
type Usage struct {
	PromptTokens, CachedPromptTokens, CompletionTokens, TotalTokens, ReasoningTokens int
}

// Item is one stored analysis.
type Item struct {
	Portfolio string
	// Timestamp is the run's instant, stored as RFC 3339 UTC with exactly
	// three fractional digits (TimeFormat), so two runs in the same second
	// do not collide and the strings sort in time order.
	Timestamp time.Time
	// Analysis is the human-readable text.
	Analysis string
	// Model is the model the API reported, or analysis.RulesName.
	Model string
	// DataAsOf is the trading date of the market data used.
	DataAsOf string
	// Result is the validated structured result (parsed_data: summary,
	// overall_risk, concentration_flags, top_actions, tickers).
	Result analysis.Result
	// Missing and Stale are symbols without data or with old data
	// (parsed_data.missing, parsed_data.stale).
	Missing, Stale []string
	// Excluded are raw symbols rejected by validation, with the reason.
	Excluded []string

	PromptVersion     string
	PromptSHA256      string
	InputHash         string
	RequestedModel    string
	SystemFingerprint string
	Usage             Usage
	// CostUSD is the reported cost, nil when the API did not report one.
	CostUSD   *float64
	LatencyMs int64
	// Attempts is the number of HTTP requests made to the model.
	Attempts int
	// Calls is the number of model calls (requests answered, repairs and
	// batches included): what was paid for.
	Calls  int
	Status string
	Reason string
}

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

// Put stores it. It never overwrites: two runs in the same second give
// ErrExists for the second, rather than one silently replacing the other.
func (r *Repository) Put(ctx context.Context, it Item) error {
	item, err := marshal(it)
	if err != nil {
		return retry.Permanent(fmt.Errorf("store analysis of %q: %w", it.Portfolio, err))
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
var ErrUnreadable = errors.New("stored analysis not readable")

// Recent returns the newest items of a portfolio, newest first, at most limit.
// Items that cannot be decoded (written by hand or by another version) are
// left out and named in an error wrapping ErrUnreadable, returned together
// with the readable items, so one bad item cannot hide the others.
func (r *Repository) Recent(ctx context.Context, portfolio string, limit int) ([]Item, error) {
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
	items := make([]Item, 0, len(out.Items))
	var bad []error
	for _, raw := range out.Items {
		it, err := unmarshal(raw)
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

func marshal(it Item) (map[string]types.AttributeValue, error) {
	if it.Portfolio == "" || it.Timestamp.IsZero() {
		return nil, errors.New("portfolio and timestamp are required")
	}
	if it.Status != StatusOK && it.Status != StatusFallback {
		return nil, fmt.Errorf("status %q is not %q or %q", it.Status, StatusOK, StatusFallback)
	}
	tickers := make([]types.AttributeValue, len(it.Result.Tickers))
	for i, t := range it.Result.Tickers {
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
		tickers[i] = &types.AttributeValueMemberM{Value: m}
	}
	tops := make([]types.AttributeValue, len(it.Result.TopActions))
	for i, a := range it.Result.TopActions {
		tops[i] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"ticker": s(a.Ticker), "action": s(a.Action), "reason": s(a.Reason)}}
	}
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
			"tickers":             &types.AttributeValueMemberL{Value: tickers},
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
		AttrExcluded:  list(orEmpty(it.Excluded)),
	}
	if it.SystemFingerprint != "" {
		item[AttrSystemFingerprint] = s(it.SystemFingerprint)
	}
	if it.Reason != "" {
		item[AttrReason] = s(it.Reason)
	}
	if it.CostUSD != nil {
		if math.IsNaN(*it.CostUSD) || math.IsInf(*it.CostUSD, 0) {
			return nil, errors.New("cost is not a finite number")
		}
		item[AttrCostUSD] = n(*it.CostUSD)
	}
	return item, nil
}

func orEmpty(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}

// reader collects the first decoding problem.
type reader struct {
	m   map[string]types.AttributeValue
	err error
}

func (r *reader) fail(name, what string) {
	if r.err == nil {
		r.err = fmt.Errorf("attribute %s: %s", name, what)
	}
}

func (r *reader) str(name string) string {
	switch v := r.m[name].(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case nil:
		return ""
	}
	r.fail(name, "not a string")
	return ""
}

func (r *reader) num(name string) (float64, bool) {
	switch v := r.m[name].(type) {
	case *types.AttributeValueMemberN:
		f, err := strconv.ParseFloat(v.Value, 64)
		if err != nil {
			r.fail(name, "not a number")
		}
		return f, true
	case nil:
		return 0, false
	}
	r.fail(name, "not a number")
	return 0, false
}

func (r *reader) int(name string) int { f, _ := r.num(name); return int(f) }

func (r *reader) strs(name string) []string {
	switch v := r.m[name].(type) {
	case *types.AttributeValueMemberL:
		out := make([]string, 0, len(v.Value))
		for _, e := range v.Value {
			sv, ok := e.(*types.AttributeValueMemberS)
			if !ok {
				r.fail(name, "list of non-strings")
				return nil
			}
			out = append(out, sv.Value)
		}
		return out
	case nil:
		return []string{}
	}
	r.fail(name, "not a list")
	return nil
}

func (r *reader) sub(name string) *reader {
	switch v := r.m[name].(type) {
	case *types.AttributeValueMemberM:
		return &reader{m: v.Value}
	case nil:
		return &reader{m: map[string]types.AttributeValue{}}
	}
	r.fail(name, "not a map")
	return &reader{m: map[string]types.AttributeValue{}}
}

func unmarshal(m map[string]types.AttributeValue) (Item, error) {
	r := &reader{m: m}
	it := Item{
		Portfolio: r.str(deploy.AttrPortfolio), Analysis: r.str(AttrAnalysis), Model: r.str(AttrModel), DataAsOf: r.str(AttrDataAsOf),
		PromptVersion: r.str(AttrPromptVersion), PromptSHA256: r.str(AttrPromptSHA256), InputHash: r.str(AttrInputHash),
		RequestedModel: r.str(AttrRequestedModel), SystemFingerprint: r.str(AttrSystemFingerprint),
		LatencyMs: int64(r.int(AttrLatencyMs)), Attempts: r.int(AttrAttempts), Calls: r.int(AttrCalls), Status: r.str(AttrStatus), Reason: r.str(AttrReason),
		Excluded: r.strs(AttrExcluded),
	}
	ts, err := time.Parse(time.RFC3339, r.str(deploy.AttrTimestamp))
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("attribute %s: %w", deploy.AttrTimestamp, err)
	}
	it.Timestamp = ts
	if c, ok := r.num(AttrCostUSD); ok {
		it.CostUSD = &c
	}
	u := r.sub(AttrUsage)
	it.Usage = Usage{PromptTokens: u.int("promptTokens"), CachedPromptTokens: u.int("cachedPromptTokens"), CompletionTokens: u.int("completionTokens"),
		TotalTokens: u.int("totalTokens"), ReasoningTokens: u.int("reasoningTokens")}
	pd := r.sub(AttrParsedData)
	// Items of earlier prompt versions lack the fields added since: they
	// read as empty.
	it.Result.Summary = pd.str("summary")
	it.Result.OverallRisk = pd.str("overall_risk")
	it.Result.ConcentrationFlags = pd.strs("concentration_flags")
	if l, ok := pd.m["top_actions"].(*types.AttributeValueMemberL); ok {
		for _, e := range l.Value {
			em, ok := e.(*types.AttributeValueMemberM)
			if !ok {
				pd.fail("top_actions", "entry is not a map")
				break
			}
			tr := &reader{m: em.Value}
			it.Result.TopActions = append(it.Result.TopActions, analysis.TopAction{Ticker: tr.str("ticker"), Action: tr.str("action"), Reason: tr.str("reason")})
			if tr.err != nil && pd.err == nil {
				pd.err = tr.err
			}
		}
	}
	it.Result.Analysis = it.Analysis
	it.Missing, it.Stale = pd.strs("missing"), pd.strs("stale")
	if l, ok := pd.m["tickers"].(*types.AttributeValueMemberL); ok {
		for _, e := range l.Value {
			em, ok := e.(*types.AttributeValueMemberM)
			if !ok {
				pd.fail("tickers", "entry is not a map")
				break
			}
			tr := &reader{m: em.Value}
			ts := analysis.TickerScore{Ticker: tr.str("ticker"), Score: tr.int("score"), Signal: tr.str("signal"), Rationale: tr.str("rationale"),
				Confidence: tr.str("confidence"), KeyRisk: tr.str("key_risk"), Action: tr.str("action"), Source: tr.str("source")}
			if raw, ok := tr.num("raw_score"); ok {
				v := int(raw)
				ts.RawScore = &v
			}
			it.Result.Tickers = append(it.Result.Tickers, ts)
			if tr.err != nil && pd.err == nil {
				pd.err = tr.err
			}
		}
	}
	for _, e := range []error{r.err, u.err, pd.err} {
		if e != nil {
			return Item{}, e
		}
	}
	return it, nil
}
