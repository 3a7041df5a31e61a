package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zsmseven/backend/internal/devstack"
	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

const statusSynopsis = "zsm status [--json] [--portfolio NAME|'*'] [--data DIR | --stage dev|prod]"

const statusDescription = `Shows the latest ticker-data row of every symbol held in the portfolio tables
(price, RSI(14), MA50 and every other stored indicator, trading date) and the latest analysis of a portfolio
(model or fallback, data date, per-ticker score and signal), each marked fresh
or stale against the last NYSE trading day.

By default it reads the local store that ` + "`zsm run`" + ` keeps under .local/dynalite
(a run with --memory leaves nothing to read). With --stage it reads a deployed
stage's tables with the default AWS credential chain (AWS_PROFILE, SSO, ...).
--json prints {"tickers":[{"ticker","price","rsi","ma50","ma200","high52w","low52w",
"return1mPct","return3mPct","return12mPct","volatility20dPct","atr","asOf",...}],
"analysis":{"portfolio","model","status","dataAsOf","tickers":[{"ticker","score","signal",
"confidence","action","keyRisk",...}],...}}.

--portfolio '*' shows every portfolio's latest analysis instead: a table of them (the
tickers' table shows each ticker's score of its data day, the same in every portfolio), and
with --json {"analyses":[{"portfolio","model","status","dataAsOf","tickers":[...],...}]}
(a portfolio never analyzed has status "none").`

// tickerStatus is one ticker's latest row. Its JSON carries every indicator
// of the row under its stored name (indicators.Fields: "rsi", "ma50",
// "ma200", ...), null when the row has none.
type tickerStatus struct {
	Ticker string  `json:"ticker"`
	Price  float64 `json:"price"`
	// VsMA50Pct is the price's distance from MA50 in percent (nil without MA50).
	VsMA50Pct *float64 `json:"vsMa50Pct"`
	AsOf      string   `json:"asOf"`
	Timestamp string   `json:"timestamp"`
	FetchedAt string   `json:"fetchedAt"`
	Source    string   `json:"source"`
	Bars      int      `json:"bars"`
	Fresh     bool     `json:"fresh"`
	// Snapshot holds the indicators (not encoded as such: see MarshalJSON).
	Snapshot indicators.Snapshot `json:"-"`
}

// MarshalJSON adds each indicator of the snapshot to the fixed fields.
func (t tickerStatus) MarshalJSON() ([]byte, error) {
	type fixed tickerStatus // without the method
	b, err := json.Marshal(fixed(t))
	if err != nil {
		return nil, err
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for _, f := range indicators.Fields {
		v, err := json.Marshal(f.Get(t.Snapshot))
		if err != nil {
			return nil, err
		}
		m[f.Name] = v
	}
	return json.Marshal(m)
}

// scoreStatus is one ticker of the analysis.
type scoreStatus struct {
	Ticker     string `json:"ticker"`
	Score      int    `json:"score"`
	Signal     string `json:"signal"`
	Confidence string `json:"confidence"`
	Action     string `json:"action"`
	KeyRisk    string `json:"keyRisk"`
	Rationale  string `json:"rationale"`
}

// topAction is one of the portfolio's top actions.
type topAction struct {
	Ticker string `json:"ticker"`
	Action string `json:"action"`
	Reason string `json:"reason"`
}

// noAnalysis is the status of a portfolio without a stored analysis.
const noAnalysis = "none"

// analysisStatus is the latest stored analysis of a portfolio.
type analysisStatus struct {
	Portfolio string `json:"portfolio"`
	Timestamp string `json:"timestamp"`
	Model     string `json:"model"`
	// Manager wrote the overview: the model's name, or the rules'.
	Manager string `json:"manager,omitempty"`
	// Status is ok, fallback, or noAnalysis.
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
	DataAsOf string `json:"dataAsOf"`
	// Fresh: the data is of the last trading day and no symbol of the
	// portfolio was missing or stale when it was analyzed.
	Fresh bool `json:"fresh"`
	// Missing and Stale are the symbols the analysis had no data, or only
	// old data, for.
	Missing            []string      `json:"missing"`
	Stale              []string      `json:"stale"`
	Summary            string        `json:"summary"`
	OverallRisk        string        `json:"overallRisk"`
	ConcentrationFlags []string      `json:"concentrationFlags"`
	TopActions         []topAction   `json:"topActions"`
	Tickers            []scoreStatus `json:"tickers"`
	// OmittedPositions counts the positions beyond the 500 analyzed.
	OmittedPositions int `json:"omittedPositions,omitempty"`
}

// statusReport is what `zsm status --json` prints and `zsm run` renders.
type statusReport struct {
	Stage          string `json:"stage"`
	Store          string `json:"store"`
	LastTradingDay string `json:"lastTradingDay"`
	Portfolio      string `json:"portfolio"`
	// Tickers are the latest rows of every symbol in the portfolio tables;
	// Missing the symbols without any row.
	Tickers []tickerStatus `json:"tickers"`
	Missing []string       `json:"missing"`
	Invalid int            `json:"invalidSymbols"`
	// Analysis is the portfolio's latest analysis (absent when none); with
	// the portfolio "*", Analyses holds every portfolio's instead — a list,
	// [] when there is no portfolio, for scripts that iterate it.
	Analysis *analysisStatus   `json:"analysis,omitempty"`
	Analyses *[]analysisStatus `json:"analyses,omitempty"`
}

// gatherStatus reads the latest rows and analysis from a stage's tables.
func gatherStatus(ctx context.Context, db *dynamodb.Client, stage, portfolio, store string, now time.Time) (statusReport, error) {
	rep := statusReport{Stage: stage, Store: store, LastTradingDay: marketdata.LastTradingDay(now), Portfolio: portfolio,
		Tickers: []tickerStatus{}, Missing: []string{}}
	scan, err := portfoliodb.NewReader(db, deploy.UserPortfolios.Name(stage), deploy.PortfolioPositions.Name(stage)).ScanSymbols(ctx)
	if err != nil {
		return rep, err
	}
	rep.Invalid = len(scan.Invalid)
	rows := tickerdb.NewStore(db, deploy.TickerData.Name(stage))
	for _, sym := range scan.Symbols {
		r, ok, err := rows.Latest(ctx, sym)
		if err != nil {
			return rep, err
		}
		if !ok {
			rep.Missing = append(rep.Missing, sym)
			continue
		}
		ts := tickerStatus{Ticker: r.Ticker, Price: r.Price, AsOf: r.AsOf, Snapshot: r.Snapshot,
			Timestamp: r.Timestamp.UTC().Format(time.RFC3339), FetchedAt: r.FetchedAt.UTC().Format(time.RFC3339),
			Source: r.Source, Bars: r.Bars, Fresh: r.AsOf == rep.LastTradingDay}
		if r.MA50 != nil && *r.MA50 > 0 {
			pct := math.Round((r.Price/(*r.MA50)-1)*10000) / 100
			ts.VsMA50Pct = &pct
		}
		rep.Tickers = append(rep.Tickers, ts)
	}
	repo := analysisdb.New(db, deploy.PortfolioAnalyses.Name(stage))
	if portfolio == analyzer.AllPortfolios {
		all, err := latestAnalyses(ctx, db, repo, stage, rep.LastTradingDay)
		rep.Analyses = &all
		return rep, err
	}
	a, err := latestAnalysis(ctx, repo, portfolio, rep.LastTradingDay)
	if err != nil {
		return rep, err
	}
	if a.Status != noAnalysis {
		rep.Analysis = &a
	}
	return rep, nil
}

// latestAnalysis is a portfolio's newest stored analysis, or one of status
// noAnalysis.
func latestAnalysis(ctx context.Context, repo *analysisdb.Repository, portfolio, lastTradingDay string) (analysisStatus, error) {
	a := analysisStatus{Portfolio: portfolio, Status: noAnalysis, Missing: []string{}, Stale: []string{}, ConcentrationFlags: []string{},
		TopActions: []topAction{}, Tickers: []scoreStatus{}}
	recent, err := repo.Recent(ctx, portfolio, 1)
	if err != nil {
		return a, err
	}
	if len(recent) == 0 {
		return a, nil
	}
	it := recent[0]
	a.Timestamp, a.Model, a.Status, a.Reason, a.DataAsOf = it.Timestamp.UTC().Format(time.RFC3339), it.Model, it.Status, it.Reason, it.DataAsOf
	a.Manager, a.OmittedPositions = it.Manager, it.Omitted
	a.Fresh = it.DataAsOf == lastTradingDay && len(it.Missing) == 0 && len(it.Stale) == 0
	a.Missing, a.Stale = append(a.Missing, it.Missing...), append(a.Stale, it.Stale...)
	a.Summary, a.OverallRisk = it.Result.Summary, it.Result.OverallRisk
	a.ConcentrationFlags = append(a.ConcentrationFlags, it.Result.ConcentrationFlags...)
	for _, t := range it.Result.TopActions {
		a.TopActions = append(a.TopActions, topAction{Ticker: t.Ticker, Action: t.Action, Reason: t.Reason})
	}
	for _, t := range it.Result.Tickers {
		a.Tickers = append(a.Tickers, scoreStatus{Ticker: t.Ticker, Score: t.Score, Signal: t.Signal, Confidence: t.Confidence,
			Action: t.Action, KeyRisk: t.KeyRisk, Rationale: t.Rationale})
	}
	return a, nil
}

// latestAnalyses is every portfolio's latest analysis, in name order, read
// eight at a time.
func latestAnalyses(ctx context.Context, db *dynamodb.Client, repo *analysisdb.Repository, stage, lastTradingDay string) ([]analysisStatus, error) {
	all, err := portfoliodb.NewReader(db, deploy.UserPortfolios.Name(stage), deploy.PortfolioPositions.Name(stage)).List(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range all {
		if !slices.Contains(names, p.Name) {
			names = append(names, p.Name)
		}
	}
	out := make([]analysisStatus, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = latestAnalysis(ctx, repo, n, lastTradingDay)
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// tickerScores is each ticker's score to show beside its row: the
// portfolio's analysis's, or with '*' the newest analysis's of the ticker's
// data day (a ticker has one score a night, the same in every portfolio).
func tickerScores(rep statusReport) map[string]scoreStatus {
	scores := map[string]scoreStatus{}
	if rep.Analysis != nil {
		for _, s := range rep.Analysis.Tickers {
			scores[s.Ticker] = s
		}
		return scores
	}
	if rep.Analyses == nil {
		return scores
	}
	asOf := map[string]string{}
	for _, t := range rep.Tickers {
		asOf[t.Ticker] = t.AsOf
	}
	newest := map[string]string{} // ticker → timestamp of the analysis its score is from
	for _, a := range *rep.Analyses {
		for _, s := range a.Tickers {
			if a.DataAsOf == asOf[s.Ticker] && a.Timestamp > newest[s.Ticker] {
				scores[s.Ticker], newest[s.Ticker] = s, a.Timestamp
			}
		}
	}
	return scores
}

// printTable renders the report for people.
func printTable(w io.Writer, rep statusReport) {
	scores := tickerScores(rep)
	const row = "%-7s %10s %8s %10s %8s %6s  %-11s %s\n"
	fmt.Fprintf(w, row, "TICKER", "PRICE", "RSI(14)", "MA50", "vs MA50", "SCORE", "SIGNAL", "AS OF")
	for _, t := range rep.Tickers {
		score, signal := "-", "-"
		if s, ok := scores[t.Ticker]; ok {
			score, signal = fmt.Sprint(s.Score), s.Signal
		}
		asOf := t.AsOf
		if !t.Fresh {
			asOf += " (stale)"
		}
		fmt.Fprintf(w, row, t.Ticker, fmt.Sprintf("%.2f", t.Price), num(t.Snapshot.RSI, "%.1f"), num(t.Snapshot.MA50, "%.2f"),
			num(t.VsMA50Pct, "%+.1f%%"), score, signal, asOf)
	}
	for _, m := range rep.Missing {
		fmt.Fprintf(w, row, m, "-", "-", "-", "-", "-", "-", "no data")
	}
	printIndicators(w, rep.Tickers)
	for _, t := range rep.Tickers {
		if t.Source == fakepolygon.SampleSource {
			fmt.Fprintf(w, "\n%s.\n", fakepolygon.SampleLabel)
			break
		}
	}
	fmt.Fprintln(w)
	if rep.Portfolio == analyzer.AllPortfolios {
		printAnalyses(w, rep)
		return
	}
	if rep.Analysis == nil {
		fmt.Fprintf(w, "Analysis of %q: none stored yet.\n", rep.Portfolio)
		return
	}
	a := rep.Analysis
	fresh := "fresh"
	switch {
	case a.DataAsOf != rep.LastTradingDay:
		fresh = "stale: the last trading day is " + rep.LastTradingDay
	case !a.Fresh:
		fresh = fmt.Sprintf("incomplete: %d symbols without current data", len(a.Missing)+len(a.Stale))
	}
	fmt.Fprintf(w, "Analysis of %q at %s, data as of %s (%s)\n", a.Portfolio, a.Timestamp, a.DataAsOf, fresh)
	switch a.Status {
	case analysis.StatusFallback:
		if a.Model == analysis.RulesName {
			fmt.Fprintf(w, "  by: %s — the rules analyst (fallback: %s)\n", a.Model, a.Reason)
		} else {
			fmt.Fprintf(w, "  by: model %s, partly the rules analyst (fallback: %s)\n", a.Model, a.Reason)
		}
	default:
		fmt.Fprintf(w, "  by: model %s\n", a.Model)
	}
	if a.Manager != "" && a.Manager != a.Model {
		fmt.Fprintf(w, "  overview by: %s\n", describeManager(a.Manager))
	}
	if a.OmittedPositions > 0 {
		fmt.Fprintf(w, "  not analyzed: %d smaller positions (at most 500 are)\n", a.OmittedPositions)
	}
	if len(a.Missing) > 0 {
		fmt.Fprintf(w, "  no data for: %s\n", strings.Join(a.Missing, ", "))
	}
	if len(a.Stale) > 0 {
		fmt.Fprintf(w, "  old data for: %s\n", strings.Join(a.Stale, ", "))
	}
	fmt.Fprintf(w, "  summary: %s\n", strings.TrimSpace(a.Summary))
	if a.OverallRisk != "" {
		fmt.Fprintf(w, "  overall risk: %s\n", a.OverallRisk)
	}
	for _, f := range a.ConcentrationFlags {
		fmt.Fprintf(w, "  concentration: %s\n", f)
	}
	for i, t := range a.TopActions {
		fmt.Fprintf(w, "  top action %d: %s %s — %s\n", i+1, t.Action, t.Ticker, t.Reason)
	}
}

// printAnalyses is the table of every portfolio's latest analysis.
func printAnalyses(w io.Writer, rep statusReport) {
	const row = "%-24s %-9s %-16s %-10s %-5s %7s %9s %-6s %s\n"
	fmt.Fprintf(w, row, "PORTFOLIO", "STATUS", "MODEL", "DATA AS OF", "FRESH", "TICKERS", "AVG SCORE", "RISK", "TOP ACTION")
	counts := map[string]int{}
	for _, a := range *rep.Analyses {
		counts[a.Status]++
		fresh, avg, top := "-", "-", "-"
		if a.Status != noAnalysis {
			fresh = "no"
			if a.Fresh {
				fresh = "yes"
			}
		}
		if len(a.Tickers) > 0 {
			sum := 0
			for _, t := range a.Tickers {
				sum += t.Score
			}
			avg = fmt.Sprintf("%.1f", float64(sum)/float64(len(a.Tickers)))
		}
		if len(a.TopActions) > 0 {
			top = a.TopActions[0].Action + " " + a.TopActions[0].Ticker
		}
		name := a.Portfolio
		if len([]rune(name)) > 24 {
			name = string([]rune(name)[:23]) + "…"
		}
		fmt.Fprintf(w, row, name, a.Status, orDash(a.Model), orDash(a.DataAsOf), fresh, fmt.Sprint(len(a.Tickers)), avg, orDash(a.OverallRisk), top)
	}
	fmt.Fprintf(w, "\n%d portfolios: %d ok, %d fallback, %d never analyzed.\n", len(*rep.Analyses), counts[analysis.StatusOK], counts[analysis.StatusFallback], counts[noAnalysis])
}

// describeManager names who wrote an overview.
func describeManager(m string) string {
	if m == analysis.RulesName {
		return m + ", the rules (no model call)"
	}
	return "model " + m
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printIndicators is a second table with every indicator of every row, one
// column per indicators.Fields entry: an indicator added there shows here.
func printIndicators(w io.Writer, rows []tickerStatus) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-7s", "TICKER")
	for _, f := range indicators.Fields {
		fmt.Fprintf(w, " %*s", colWidth(f), f.Label)
	}
	fmt.Fprintln(w)
	for _, t := range rows {
		fmt.Fprintf(w, "%-7s", t.Ticker)
		for _, f := range indicators.Fields {
			fmt.Fprintf(w, " %*s", colWidth(f), formatIndicator(f, f.Get(t.Snapshot)))
		}
		fmt.Fprintln(w)
	}
}

func colWidth(f indicators.Field) int { return max(len(f.Label), 8) }

// formatIndicator writes v in its unit: prices with two decimals, percents
// and an index with one; "-" when absent.
func formatIndicator(f indicators.Field, v *float64) string {
	switch f.Unit {
	case indicators.UnitPercent:
		return num(v, "%.1f%%")
	case indicators.UnitIndex:
		return num(v, "%.1f")
	default:
		return num(v, "%.2f")
	}
}

func num(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

// runStatus implements `zsm status`.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCmdFlags("status", statusSynopsis, statusDescription, stdout)
	asJSON := fs.Bool("json", false, "print JSON for machines")
	portfolio := fs.String("portfolio", devstack.SamplePortfolio, "the portfolio whose latest analysis to show; '*' for every portfolio's")
	data := fs.String("data", devstack.DefaultDataDir, "the local store that zsm run keeps")
	stage := fs.String("stage", "", "read a deployed stage (dev or prod) instead of the local store")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("status: unexpected argument %.40q (see zsm status --help)", fs.Arg(0))
	}
	var (
		db        *dynamodb.Client
		stageName string
		store     string
	)
	if *stage != "" {
		if err := deploy.ValidateDeployStage(*stage); err != nil {
			return usagef("status: %v", err)
		}
		cfg, err := awsconfig.LoadDefaultConfig(ctx)
		if err != nil {
			return fmt.Errorf("status: AWS configuration: %w", err)
		}
		db, stageName, store = dynamodb.NewFromConfig(cfg), *stage, "AWS DynamoDB (stage "+*stage+", region "+cfg.Region+")"
	} else {
		if _, err := os.Stat(*data); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("status: no local data under %s: run `make run` first (it keeps data there unless --memory)", *data)
		}
		st, err := devstack.Start(ctx, devstack.Options{DataDir: *data, NoQueue: true, NoMarketData: true, NoSeed: true})
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		defer st.Stop()
		db, stageName, store = st.DB, st.Stage, "local dynalite under "+*data
	}
	rep, err := gatherStatus(ctx, db, stageName, *portfolio, store, time.Now())
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "Stage %s, %s; last trading day %s\n\n", rep.Stage, rep.Store, rep.LastTradingDay)
	printTable(stdout, rep)
	return nil
}
