package analyzer_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/pkg/analysis"
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

	srv := fakexai.New(t,
		fakexai.Completion{Content: goodTickers, Model: "grok-4.3-0309", PromptTokens: 900, CompletionTokens: 200, ReasoningTokens: 100, CostInUSDTicks: 10000000}.Reply(),
		fakexai.Completion{Content: goodOverview, Model: "grok-4.3-0309", SystemFingerprint: "fp_int",
			PromptTokens: 1834, CompletionTokens: 412, ReasoningTokens: 544, CostInUSDTicks: 37525000}.Reply(),
		fakexai.Generate(&fakexai.Generator{Model: "grok-4.3-0309"}))
	vars := localEnv(t, env, map[string]string{"XAI_API_URL": srv.URL, "XAI_API_KEY": fakexai.Key})
	var out bytes.Buffer
	h, err := analyzeportfolio.New(ctx, func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, &out)
	require.NoError(t, err)

	res, err := h.Run(ctx, analyzer.Event{})
	require.NoError(t, err)
	require.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status, out.String())
	assert.Equal(t, 2, srv.Calls(), "the ticker batch and the overview")

	items := queryAll(t, c, deploy.PortfolioAnalyses.Name(env.Stage))
	require.Len(t, items, 1)
	it := items[0]
	want := map[string]string{
		"portfolio": "S", "timestamp": "S", "analysis": "S", "model": "S", "dataAsOf": "S", "parsed_data": "M",
		"promptVersion": "S", "promptSha256": "S", "inputHash": "S", "requestedModel": "S", "systemFingerprint": "S",
		"usage": "M", "costUsd": "N", "latencyMs": "N", "attempts": "N", "calls": "N", "status": "S", "excludedSymbols": "L", "manager": "S",
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
	assert.Equal(t, map[string]types.AttributeValue{"ticker": sv("AAPL"), "score": nv("70"), "signal": sv("buy"), "rationale": sv("Because of the data."),
		"confidence": sv("medium"), "key_risk": sv("market risk"), "action": sv("add"), "source": sv("model")}, first)
	assert.Equal(t, sv("grok-4.3-0309"), it["manager"])
	usage := it["usage"].(*types.AttributeValueMemberM).Value
	assert.Equal(t, nv("1834"), usage["promptTokens"])
	assert.Equal(t, nv("544"), usage["reasoningTokens"])
	assert.Len(t, it["excludedSymbols"].(*types.AttributeValueMemberL).Value, 1, "BAD\\nSYM")

	// The ticker analyst got the fresh AAPL row, not the old one.
	user := srv.Requests()[0].Decoded.Messages[1].Content
	assert.Contains(t, user, `"price":278.85`)
	assert.NotContains(t, user, "BAD")

	// The ledger holds the batch's claim with its paid answer, the
	// overview's with its own, the portfolio's (its record stored), and
	// each ticker's score.
	ledger := queryAll(t, c, deploy.AnalysisReservations.Name(env.Stage))
	kinds := map[string]int{}
	for _, l := range ledger {
		kinds[l["kind"].(*types.AttributeValueMemberS).Value]++
	}
	assert.Equal(t, map[string]int{"batch": 1, "score": 2, "overview": 1, "portfolio": 1}, kinds)

	// Logs and metrics went to out; the key did not.
	assert.Contains(t, out.String(), `"AnalysesStored":1`)
	assert.Contains(t, out.String(), `"LLMCostUSD":0.0047525`)
	assert.NotContains(t, out.String(), fakexai.Key)

	// Second run: reused, no call, no new item.
	res, err = h.Run(ctx, analyzer.Event{PortfolioName: "ZSM Seven"})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeReused, res.Portfolios[0].Status)
	assert.Equal(t, it["timestamp"], sv(res.Portfolios[0].Timestamp))
	assert.Equal(t, 2, srv.Calls())
	assert.Len(t, queryAll(t, c, deploy.PortfolioAnalyses.Name(env.Stage)), 1)

	// Force: a new item.
	res, err = h.Run(ctx, analyzer.Event{Force: true})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeOK, res.Portfolios[0].Status)
	assert.Equal(t, 4, srv.Calls(), "scored again and judged again")
	assert.Len(t, queryAll(t, c, deploy.PortfolioAnalyses.Name(env.Stage)), 2)

	// Unknown portfolio: a clear error, nothing stored.
	_, err = h.Run(ctx, analyzer.Event{PortfolioName: "Nobody"})
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
	vars := localEnv(t, env, nil)
	var out bytes.Buffer
	h, err := analyzeportfolio.New(ctx, func(k string) (string, bool) { v, ok := vars[k]; return v, ok }, &out)
	require.NoError(t, err)
	res, err := h.Run(ctx, analyzer.Event{})
	require.NoError(t, err)
	assert.Equal(t, analyzer.OutcomeFallback, res.Portfolios[0].Status)
	assert.Contains(t, res.Portfolios[0].Reason, "xAI API key not configured")
	items := queryAll(t, env.Client, deploy.PortfolioAnalyses.Name(env.Stage))
	require.Len(t, items, 1)
	assert.Equal(t, sv(analysis.RulesName), items[0]["model"])
	assert.Equal(t, sv("fallback"), items[0]["status"])
	assert.NotContains(t, items[0], "costUsd")
	assert.True(t, strings.Contains(out.String(), `"AnalysisFallback":1`))
}

// unusedQueue is an analysis queue URL for tests that do not fan out.
const unusedQueue = "http://127.0.0.1:1/000000000000/portfolio-analysis-queue-test"

// localEnv points the AWS SDK at the test's dynalite and returns the
// function's environment for its stage, plus extra.
func localEnv(t *testing.T, env *dynalitetest.Env, extra map[string]string) map[string]string {
	t.Helper()
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", env.Endpoint)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "local")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "local")
	vars := map[string]string{
		"STAGE": env.Stage, "USER_PORTFOLIOS_TABLE": deploy.UserPortfolios.Name(env.Stage),
		"PORTFOLIO_POSITIONS_TABLE": deploy.PortfolioPositions.Name(env.Stage), "TICKER_DATA_TABLE": deploy.TickerData.Name(env.Stage),
		"PORTFOLIO_ANALYSES_TABLE": deploy.PortfolioAnalyses.Name(env.Stage), "ANALYSIS_RESERVATIONS_TABLE": deploy.AnalysisReservations.Name(env.Stage),
		"ANALYSIS_QUEUE_URL": unusedQueue,
	}
	for k, v := range extra {
		vars[k] = v
	}
	return vars
}

// Two runs of the same analysis at once — a retried schedule and a manual
// run, or a message delivered twice — against dynalite, the deployed wiring
// and a model that takes a while to answer: exactly one paid call, one
// stored analysis; the other run waits for it and reuses it.
func TestTwoConcurrentRunsPayOnce(t *testing.T) {
	env := dynalitetest.New(t)
	ctx := context.Background()
	c := env.Client
	put(t, c, deploy.UserPortfolios.Name(env.Stage), map[string]types.AttributeValue{
		"userId": sv("u1"), "portfolioId": sv("p1"), "name": sv("ZSM Seven"), "tickers": &types.AttributeValueMemberSS{Value: []string{"AAPL", "MSFT", "NVDA"}}})
	last := marketdata.LastTradingDay(time.Now())
	store := tickerdb.NewStore(c, deploy.TickerData.Name(env.Stage))
	for _, sym := range []string{"AAPL", "MSFT", "NVDA"} {
		r := tickerdb.Row{Ticker: sym, Snapshot: indicators.Snapshot{AsOf: last, Price: 100, RSI: f(50), MA50: f(100), Bars: 250}, Source: "polygon"}
		var err error
		r.Timestamp, err = marketdata.CloseInstant(last)
		require.NoError(t, err)
		require.NoError(t, store.Put(ctx, r))
	}
	srv := fakexai.New(t, fakexai.Slow(fakexai.Generate(&fakexai.Generator{}), 500*time.Millisecond))
	vars := localEnv(t, env, map[string]string{"XAI_API_URL": srv.URL, "XAI_API_KEY": fakexai.Key})
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	var results [2]analyzer.Result
	var errs [2]error
	var wg sync.WaitGroup
	for i := range 2 {
		// Two functions, as two execution environments would be.
		d, err := analyzeportfolio.FromEnv(ctx, lookup, &bytes.Buffer{})
		require.NoError(t, err)
		d.WaitPoll, d.MinWork = 50*time.Millisecond, time.Second
		fn := analyzeportfolio.Build(d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			results[i], errs[i] = fn.Run(ictx, analyzer.Event{PortfolioName: "ZSM Seven"})
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	assert.Equal(t, 2, srv.Paid(), "exactly one ticker batch and one overview paid")
	assert.Zero(t, srv.RepeatedPaid())
	assert.Len(t, queryAll(t, c, deploy.PortfolioAnalyses.Name(env.Stage)), 1, "one stored analysis")
	statuses := []string{results[0].Portfolios[0].Status, results[1].Portfolios[0].Status}
	assert.ElementsMatch(t, []string{analyzer.OutcomeOK, analyzer.OutcomeReused}, statuses)
	assert.Equal(t, results[0].Portfolios[0].Timestamp, results[1].Portfolios[0].Timestamp, "both name the same analysis")
	for _, l := range queryAll(t, c, deploy.AnalysisReservations.Name(env.Stage)) {
		assert.Equal(t, sv("done"), l["state"], "every claim and score settled")
	}
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
