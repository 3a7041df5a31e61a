package analysisdb_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/dynamoitem"
	"github.com/zsmseven/backend/pkg/retry"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

func sample(ts time.Time) analysis.Record {
	cost := 0.0037525
	return analysis.Record{
		Portfolio: "ZSM Seven", Timestamp: ts, Analysis: "Long text.", Model: "grok-4.3-0309", Manager: "grok-4.3-0309", DataAsOf: "2026-11-27",
		Result: analysis.Result{Summary: "Short.", Analysis: "Long text.", OverallRisk: "medium",
			ConcentrationFlags: []string{"AAPL is 70% of the weighted value"},
			TopActions:         []analysis.TopAction{{Ticker: "AAPL", Action: "add", Reason: "Uptrend."}, {Ticker: "MSFT", Action: "hold", Reason: "No data."}},
			Tickers: []analysis.TickerScore{
				{Ticker: "AAPL", Score: 62, Signal: "buy", Rationale: "RSI 41.", Confidence: "high", KeyRisk: "valuation", Action: "add", Source: "model"},
				{Ticker: "MSFT", Score: 50, Signal: "hold", Rationale: "No data.", Confidence: "low", KeyRisk: "no data", Action: "hold", RawScore: ptr(80), Source: "model"},
			}},
		Missing: []string{"MSFT"}, Stale: []string{}, Excluded: []string{`"AA PL": bad`},
		PromptVersion: analysis.PromptVersion, PromptSHA256: "ab", InputHash: "cd", RequestedModel: "grok-4.3", SystemFingerprint: "fp_1",
		Usage:     analysis.Usage{PromptTokens: 1, CachedPromptTokens: 5, CompletionTokens: 2, TotalTokens: 3, ReasoningTokens: 4, CostUSD: &cost},
		LatencyMs: 1234, Attempts: 2, Calls: 1, Status: analysis.StatusOK,
	}
}

func ptr[T any](v T) *T { return &v }

func TestRoundTripAndRecent(t *testing.T) {
	env := dynalitetest.New(t, deploy.PortfolioAnalyses)
	repo := analysisdb.New(env.Client, deploy.PortfolioAnalyses.Name(env.Stage))
	ctx := context.Background()
	t0 := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	a, b := sample(t0), sample(t0.Add(time.Hour))
	b.Status, b.Reason, b.Model, b.Usage.CostUSD, b.SystemFingerprint, b.Manager = analysis.StatusFallback, "xai: HTTP 500", analysis.RulesName, nil, "", analysis.RulesName
	require.NoError(t, repo.Put(ctx, a))
	require.NoError(t, repo.Put(ctx, b))

	got, err := repo.Recent(ctx, "ZSM Seven", 10)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, b, got[0], "newest first")
	assert.Equal(t, a, got[1])

	err = repo.Put(ctx, a)
	assert.ErrorIs(t, err, analysisdb.ErrExists)
	assert.True(t, retry.IsPermanent(err))

	one, err := repo.Recent(ctx, "ZSM Seven", 1)
	require.NoError(t, err)
	assert.Len(t, one, 1)
	none, err := repo.Recent(ctx, "Other", 5)
	require.NoError(t, err)
	assert.Empty(t, none)
}

// The stored item has the attribute names and types of the contract.
func TestStoredShape(t *testing.T) {
	env := dynalitetest.New(t, deploy.PortfolioAnalyses)
	table := deploy.PortfolioAnalyses.Name(env.Stage)
	ts := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	require.NoError(t, analysisdb.New(env.Client, table).Put(context.Background(), sample(ts)))
	out, err := env.Client.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
		"portfolio": &types.AttributeValueMemberS{Value: "ZSM Seven"}, "timestamp": &types.AttributeValueMemberS{Value: "2026-11-28T06:00:00.000Z"}}})
	require.NoError(t, err)
	kinds := map[string]string{}
	for k, v := range out.Item {
		switch v.(type) {
		case *types.AttributeValueMemberS:
			kinds[k] = "S"
		case *types.AttributeValueMemberN:
			kinds[k] = "N"
		case *types.AttributeValueMemberM:
			kinds[k] = "M"
		case *types.AttributeValueMemberL:
			kinds[k] = "L"
		}
	}
	assert.Equal(t, map[string]string{"portfolio": "S", "timestamp": "S", "analysis": "S", "model": "S", "dataAsOf": "S", "parsed_data": "M",
		"promptVersion": "S", "promptSha256": "S", "inputHash": "S", "requestedModel": "S", "systemFingerprint": "S", "usage": "M",
		"costUsd": "N", "latencyMs": "N", "attempts": "N", "calls": "N", "status": "S", "excludedSymbols": "L", "manager": "S"}, kinds)
	pd := out.Item["parsed_data"].(*types.AttributeValueMemberM).Value
	first := pd["tickers"].(*types.AttributeValueMemberL).Value[0].(*types.AttributeValueMemberM).Value
	assert.Equal(t, &types.AttributeValueMemberN{Value: "62"}, first["score"])
	assert.Equal(t, &types.AttributeValueMemberS{Value: "AAPL"}, first["ticker"])
	assert.Equal(t, &types.AttributeValueMemberS{Value: "add"}, first["action"])
	assert.Equal(t, &types.AttributeValueMemberS{Value: "high"}, first["confidence"])
	assert.Equal(t, &types.AttributeValueMemberS{Value: "valuation"}, first["key_risk"])
	assert.NotContains(t, first, "raw_score", "only an adjusted score keeps its raw value")
	second := pd["tickers"].(*types.AttributeValueMemberL).Value[1].(*types.AttributeValueMemberM).Value
	assert.Equal(t, &types.AttributeValueMemberN{Value: "80"}, second["raw_score"])
	for _, k := range []string{"summary", "overall_risk", "concentration_flags", "top_actions", "missing", "stale"} {
		assert.Contains(t, pd, k)
	}
}

func TestPutRejectsBadItems(t *testing.T) {
	repo := analysisdb.New(nil, "unused")
	it := sample(time.Now())
	it.Status = "maybe"
	assert.True(t, retry.IsPermanent(repo.Put(context.Background(), it)))
	it = sample(time.Time{})
	assert.Error(t, repo.Put(context.Background(), it))
}

// An item written by an earlier prompt version (no confidence, action, key
// risk or portfolio fields) still reads, with those fields empty.
func TestReadsEarlierItems(t *testing.T) {
	env := dynalitetest.New(t, deploy.PortfolioAnalyses)
	table := deploy.PortfolioAnalyses.Name(env.Stage)
	sv := func(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
	_, err := env.Client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
		"portfolio": sv("ZSM Seven"), "timestamp": sv("2026-11-28T06:00:00.000Z"), "status": sv("ok"), "model": sv("grok-4.3"),
		"parsed_data": &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"summary": sv("s"),
			"tickers": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
				"ticker": sv("AAPL"), "score": &types.AttributeValueMemberN{Value: "62"}, "signal": sv("buy"), "rationale": sv("r")}}}}}}}})
	require.NoError(t, err)
	got, err := analysisdb.New(env.Client, table).Recent(context.Background(), "ZSM Seven", 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, []analysis.TickerScore{{Ticker: "AAPL", Score: 62, Signal: "buy", Rationale: "r"}}, got[0].Result.Tickers)
	assert.Empty(t, got[0].Result.TopActions)
}

// An item that cannot be decoded is named in an ErrUnreadable error and the
// readable items are still returned.
func TestRecentSkipsUnreadable(t *testing.T) {
	env := dynalitetest.New(t, deploy.PortfolioAnalyses)
	table := deploy.PortfolioAnalyses.Name(env.Stage)
	repo := analysisdb.New(env.Client, table)
	ctx := context.Background()
	good := sample(time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC))
	require.NoError(t, repo.Put(ctx, good))
	_, err := env.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
		"portfolio": &types.AttributeValueMemberS{Value: "ZSM Seven"}, "timestamp": &types.AttributeValueMemberS{Value: "2026-11-29T06:00:00.000Z"},
		"parsed_data": &types.AttributeValueMemberS{Value: `{"summary":"by hand"}`}}})
	require.NoError(t, err)

	got, err := repo.Recent(ctx, "ZSM Seven", 10)
	require.ErrorIs(t, err, analysisdb.ErrUnreadable)
	assert.Contains(t, err.Error(), "2026-11-29T06:00:00.000Z")
	assert.Contains(t, err.Error(), "parsed_data")
	assert.Equal(t, []analysis.Record{good}, got)
}

// A portfolio of 500 positions whose every text is as long as the parsers
// allow, in four-byte characters, stores: what does not fit the item goes
// to parts, each within the budget, and reads back whole and in order.
func TestMaximalRecordStoresInParts(t *testing.T) {
	env := dynalitetest.New(t, deploy.PortfolioAnalyses)
	table := deploy.PortfolioAnalyses.Name(env.Stage)
	repo := analysisdb.New(env.Client, table)
	ctx := context.Background()
	wide := func(n int) string { return strings.Repeat("𝄞", n) } // 4 bytes each
	it := sample(time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC))
	it.Result.Tickers = nil
	it.Missing, it.Stale = nil, nil
	for i := range analysis.MaxPositions {
		sym := fmt.Sprintf("T%c%c%c", 'A'+i/676%26, 'A'+i/26%26, 'A'+i%26)
		it.Result.Tickers = append(it.Result.Tickers, analysis.TickerScore{Ticker: sym, Score: 100, RawScore: ptr(100), Signal: "strong_buy",
			Rationale: wide(analysis.MaxRationaleLen), Confidence: "medium", KeyRisk: wide(analysis.MaxKeyRiskLen), Action: "add", Source: "model"})
		it.Missing, it.Stale = append(it.Missing, sym), append(it.Stale, sym)
	}
	it.Result.Summary, it.Analysis = wide(analysis.MaxSummaryLen), wide(analysis.MaxAnalysisLen)
	it.Result.Analysis = it.Analysis
	it.Result.ConcentrationFlags = []string{wide(300), wide(300), wide(300), wide(300), wide(300)}
	it.Result.TopActions = []analysis.TopAction{{Ticker: "TAAA", Action: "add", Reason: wide(300)}, {Ticker: "TAAB", Action: "add", Reason: wide(300)}, {Ticker: "TAAC", Action: "add", Reason: wide(300)}}
	it.Reason = wide(1000)
	for i := range 5000 {
		it.Excluded = append(it.Excluded, fmt.Sprintf("portfolio-positions-prod portfolioId=p positionId=%d: %s", i, wide(40)))
	}
	it.Omitted = 9500
	require.NoError(t, repo.Put(ctx, it), "a maximal record stores")

	out, err := env.Client.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table)})
	require.NoError(t, err)
	require.Greater(t, len(out.Items), 2, "stored in parts")
	for _, item := range out.Items {
		assert.LessOrEqual(t, dynamoitem.Size(item), analysisdb.MaxItemBytes)
	}
	got, err := repo.Recent(ctx, "ZSM Seven", 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, it.Result.Tickers, got[0].Result.Tickers, "every ticker, in order")
	assert.Equal(t, 9500, got[0].Omitted)
	assert.Len(t, got[0].Excluded, analysisdb.MaxExcluded)
	assert.Equal(t, "… and 4902 more", got[0].Excluded[analysisdb.MaxExcluded-1], "the sample's one and 5,000 more, 99 of them listed")
	// No query of a portfolio returns a part.
	recent, err := repo.Recent(ctx, "ZSM Seven", 10)
	require.NoError(t, err)
	assert.Len(t, recent, 1)
}
