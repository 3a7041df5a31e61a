package analyzer_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

func put(t *testing.T, c *dynamodb.Client, table string, item map[string]types.AttributeValue) {
	t.Helper()
	_, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item})
	require.NoError(t, err)
}

func sv(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func nv(v string) types.AttributeValue { return &types.AttributeValueMemberN{Value: v} }

// TestIntegrationDynalite runs the deployed wiring (analyzeportfolio.New
// with the AWS SDK pointed at dynalite and XAI_API_URL at fakexai) over
// seeded shared tables and ticker rows, and checks the stored item against
// the contract; a second run reuses it and force makes a new one.
func TestIntegrationDynalite(t *testing.T) {
	env := dynalitetest.New(t)
	ctx := context.Background()
	c := env.Client

	// Shared tables in their documented shape.
	put(t, c, deploy.UserPortfolios.Name(env.Stage), map[string]types.AttributeValue{
		"userId": sv("u1"), "portfolioId": sv("p1"), "name": sv("ZSM Seven")})
	for i, p := range []struct{ sym, qty string }{{"AAPL", "10"}, {"msft", "4"}, {"NVDA", "2"}, {"BAD\nSYM", "1"}} {
		put(t, c, deploy.PortfolioPositions.Name(env.Stage), map[string]types.AttributeValue{
			"portfolioId": sv("p1"), "positionId": sv(string(rune('a' + i))), "ticker": sv(p.sym), "quantity": nv(p.qty)})
	}
	// Ticker rows: AAPL fresh, MSFT a week old, NVDA none.
	last := marketdata.LastTradingDay(time.Now())
	lastT, err := time.Parse(time.DateOnly, last)
	require.NoError(t, err)
	old := marketdata.LastTradingDay(lastT.AddDate(0, 0, -7))
	store := tickerdb.NewStore(c, deploy.TickerData.Name(env.Stage))
	for _, r := range []tickerdb.Row{
		{Ticker: "AAPL", Snapshot: indicators.Snapshot{AsOf: old, Price: 250, RSI: f(50), MA50: f(250), Bars: 250}, Source: "polygon"},
		{Ticker: "AAPL", Snapshot: indicators.Snapshot{AsOf: last, Price: 278.85, RSI: f(25), MA50: f(265.5), Bars: 250}, Source: "polygon"},
		{Ticker: "MSFT", Snapshot: indicators.Snapshot{AsOf: old, Price: 480, RSI: f(75), MA50: f(500), Bars: 250}, Source: "polygon"},
	} {
		r.Timestamp, err = marketdata.CloseInstant(r.AsOf)
		require.NoError(t, err)
		r.FetchedAt = time.Now().UTC()
		require.NoError(t, store.Put(ctx, r))
	}

	srv := fakexai.New(t, fakexai.Completion{Content: good, Model: "grok-4.3-0309", SystemFingerprint: "fp_int",
		PromptTokens: 1834, CompletionTokens: 412, ReasoningTokens: 544, CostInUSDTicks: 37525000}.Reply())
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", env.Endpoint)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	vars := map[string]string{
		"STAGE": env.Stage, "USER_PORTFOLIOS_TABLE": deploy.UserPortfolios.Name(env.Stage),
		"PORTFOLIO_POSITIONS_TABLE": deploy.PortfolioPositions.Name(env.Stage), "TICKER_DATA_TABLE": deploy.TickerData.Name(env.Stage),
		"PORTFOLIO_ANALYSES_TABLE": deploy.PortfolioAnalyses.Name(env.Stage), "XAI_API_URL": srv.URL, "XAI_API_KEY": fakexai.Key,
	}
	var out bytes.Buffer
	h, err := analyzeportfolio.New(ctx, func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, &out)
	require.NoError(t, err)

	res, err := h(ctx, analyzer.Event{})
	require.NoError(t, err)
	require.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status, out.String())
	assert.Equal(t, 1, srv.Calls())

	items := queryAll(t, c, deploy.PortfolioAnalyses.Name(env.Stage))
	require.Len(t, items, 1)
	it := items[0]
	want := map[string]string{
		"portfolio": "S", "timestamp": "S", "analysis": "S", "model": "S", "dataAsOf": "S", "parsed_data": "M",
		"promptVersion": "S", "promptSha256": "S", "inputHash": "S", "requestedModel": "S", "systemFingerprint": "S",
		"usage": "M", "costUsd": "N", "latencyMs": "N", "attempts": "N", "status": "S", "excludedSymbols": "L",
	}
	for name, kind := range want {
		require.Contains(t, it, name)
		assert.Equal(t, kind, kindOf(it[name]), name)
	}
	assert.Equal(t, sv("ZSM Seven"), it["portfolio"])
	assert.Equal(t, sv("grok-4.3-0309"), it["model"])
	assert.Equal(t, sv("grok-4.3"), it["requestedModel"])
	assert.Equal(t, sv(last), it["dataAsOf"])
	assert.Equal(t, sv("ok"), it["status"])
	assert.Equal(t, nv("0.0037525"), it["costUsd"])
	assert.Equal(t, nv("1"), it["attempts"])
	pd := it["parsed_data"].(*types.AttributeValueMemberM).Value
	assert.Equal(t, &types.AttributeValueMemberL{Value: []types.AttributeValue{sv("NVDA")}}, pd["missing"])
	assert.Equal(t, &types.AttributeValueMemberL{Value: []types.AttributeValue{sv("MSFT")}}, pd["stale"])
	tickers := pd["tickers"].(*types.AttributeValueMemberL).Value
	require.Len(t, tickers, 3)
	first := tickers[0].(*types.AttributeValueMemberM).Value
	assert.Equal(t, map[string]types.AttributeValue{"ticker": sv("AAPL"), "score": nv("70"), "signal": sv("hold"), "rationale": sv("Because of the data.")}, first)
	usage := it["usage"].(*types.AttributeValueMemberM).Value
	assert.Equal(t, nv("1834"), usage["promptTokens"])
	assert.Equal(t, nv("544"), usage["reasoningTokens"])
	assert.Len(t, it["excludedSymbols"].(*types.AttributeValueMemberL).Value, 1, "BAD\\nSYM")

	// The request the model got carries the fresh AAPL row, not the old one.
	user := srv.Requests()[0].Decoded.Messages[1].Content
	assert.Contains(t, user, `"price": 278.85`)
	assert.NotContains(t, user, "BAD")

	// Logs and metrics went to out; the key did not.
	assert.Contains(t, out.String(), `"AnalysesStored":1`)
	assert.Contains(t, out.String(), `"LLMCostUSD":0.0037525`)
	assert.NotContains(t, out.String(), fakexai.Key)

	// Second run: reused, no call, no new item.
	res, err = h(ctx, analyzer.Event{PortfolioName: "ZSM Seven"})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeReused, res.Portfolios[0].Status)
	assert.Equal(t, it["timestamp"], sv(res.Portfolios[0].Timestamp))
	assert.Equal(t, 1, srv.Calls())
	assert.Len(t, queryAll(t, c, deploy.PortfolioAnalyses.Name(env.Stage)), 1)

	// Force: a new item.
	res, err = h(ctx, analyzer.Event{Force: true})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status)
	assert.Equal(t, 2, srv.Calls())
	assert.Len(t, queryAll(t, c, deploy.PortfolioAnalyses.Name(env.Stage)), 2)

	// Unknown portfolio: a clear error, nothing stored.
	_, err = h(ctx, analyzer.Event{PortfolioName: "Nobody"})
	require.ErrorIs(t, err, analyzer.ErrUnknownPortfolio)
	assert.Len(t, queryAll(t, c, deploy.PortfolioAnalyses.Name(env.Stage)), 2)
}

// TestIntegrationNoKey: without XAI_API_KEY and without a secret the rules
// analyst answers and says so.
func TestIntegrationNoKey(t *testing.T) {
	env := dynalitetest.New(t)
	ctx := context.Background()
	put(t, env.Client, deploy.UserPortfolios.Name(env.Stage), map[string]types.AttributeValue{
		"userId": sv("u1"), "portfolioId": sv("p1"), "name": sv("ZSM Seven"), "tickers": &types.AttributeValueMemberSS{Value: []string{"AAPL"}}})
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", env.Endpoint)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	vars := map[string]string{
		"STAGE": env.Stage, "USER_PORTFOLIOS_TABLE": deploy.UserPortfolios.Name(env.Stage),
		"PORTFOLIO_POSITIONS_TABLE": deploy.PortfolioPositions.Name(env.Stage), "TICKER_DATA_TABLE": deploy.TickerData.Name(env.Stage),
		"PORTFOLIO_ANALYSES_TABLE": deploy.PortfolioAnalyses.Name(env.Stage),
	}
	var out bytes.Buffer
	h, err := analyzeportfolio.New(ctx, func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, &out)
	require.NoError(t, err)
	res, err := h(ctx, analyzer.Event{})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeFallback, res.Portfolios[0].Status)
	assert.Contains(t, res.Portfolios[0].Reason, "xAI API key not configured")
	items := queryAll(t, env.Client, deploy.PortfolioAnalyses.Name(env.Stage))
	require.Len(t, items, 1)
	assert.Equal(t, sv("rules-v1"), items[0]["model"])
	assert.Equal(t, sv("fallback"), items[0]["status"])
	assert.NotContains(t, items[0], "costUsd")
	assert.True(t, strings.Contains(out.String(), `"AnalysisFallback":1`))
}

func TestStartupConfigError(t *testing.T) {
	_, err := analyzeportfolio.New(context.Background(), func(k string) (string, bool) { return "", false }, &bytes.Buffer{})
	require.Error(t, err)
	assert.Equal(t, "configuration: STAGE is required but not set", err.Error())
}

func queryAll(t *testing.T, c *dynamodb.Client, table string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := c.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table)})
	require.NoError(t, err)
	return out.Items
}

func kindOf(v types.AttributeValue) string {
	switch v.(type) {
	case *types.AttributeValueMemberS:
		return "S"
	case *types.AttributeValueMemberN:
		return "N"
	case *types.AttributeValueMemberM:
		return "M"
	case *types.AttributeValueMemberL:
		return "L"
	}
	return "?"
}
