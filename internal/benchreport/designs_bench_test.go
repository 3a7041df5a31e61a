package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/zsmseven/backend/internal/devstack/fakexai"
	"github.com/zsmseven/backend/internal/devstack/memanalysis"
	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/symbol"
	"github.com/zsmseven/backend/pkg/xai"
)

// designNight is the night the designs are compared on: portfolios of
// designPositions positions drawn from a universe of tickers, every ticker
// held by at least one portfolio, the rest of the draws Zipf-distributed (a
// few names in most portfolios, a long tail).
type designNight struct {
	LastTradingDay string                    `json:"lastTradingDay"`
	Portfolios     []designPortfolio         `json:"portfolios"`
	Snapshots      map[string]map[string]any `json:"snapshots"`
	snaps          map[string]indicators.Snapshot
}

type designPortfolio struct {
	Name      string           `json:"name"`
	Positions []designPosition `json:"positions"`
}

type designPosition struct {
	Symbol    string   `json:"symbol"`
	Quantity  *float64 `json:"quantity"`
	CostBasis *float64 `json:"costBasis"`
}

// newDesignNight draws the night of size portfolios over tickers tickers.
func newDesignNight(portfolios, tickers int) designNight {
	r := rand.New(rand.NewSource(designSeed))
	n := designNight{LastTradingDay: designDay, Snapshots: map[string]map[string]any{}, snaps: map[string]indicators.Snapshot{}}
	round := func(v float64) float64 { return math.Round(v*100) / 100 }
	universe := make([]string, tickers)
	for i := range universe {
		universe[i] = ticker(i)
		price := round(5 + r.Float64()*495)
		f := func(lo, hi float64) *float64 { v := round(lo + r.Float64()*(hi-lo)); return &v }
		s := indicators.Snapshot{AsOf: designDay, Price: price, RSI: f(20, 80), MA50: f(price*0.85, price*1.15), MA200: f(price*0.75, price*1.25),
			High52W: f(price, price*1.5), Low52W: f(price*0.5, price), Return1MPct: f(-15, 15), Return3MPct: f(-30, 30), Return12MPct: f(-50, 80),
			Volatility20DPct: f(15, 60), ATR: f(price*0.01, price*0.05), Bars: 300}
		n.snaps[universe[i]] = s
		fields := map[string]any{"asOf": s.AsOf, "price": s.Price}
		for _, fl := range indicators.Fields {
			if v := fl.Get(s); v != nil {
				fields[fl.Name] = *v
			}
		}
		n.Snapshots[universe[i]] = fields
	}
	zipf := rand.NewZipf(r, designZipfS, 1, uint64(tickers-1))
	rank := r.Perm(tickers)  // popularity order
	place := r.Perm(tickers) // every ticker held once at least
	for p := range portfolios {
		pf := designPortfolio{Name: fmt.Sprintf("P%05d", p)}
		held := map[string]bool{}
		add := func(sym string) {
			if held[sym] {
				return
			}
			held[sym] = true
			q := float64(1 + r.Intn(100))
			cost := round(q * n.snaps[sym].Price * (0.6 + 0.8*r.Float64()))
			pf.Positions = append(pf.Positions, designPosition{Symbol: sym, Quantity: &q, CostBasis: &cost})
		}
		for len(place) > 0 && len(pf.Positions) < 1+tickers/portfolios {
			add(universe[place[0]])
			place = place[1:]
		}
		for len(pf.Positions) < designPositions {
			add(universe[rank[zipf.Uint64()]])
		}
		n.Portfolios = append(n.Portfolios, pf)
	}
	return n
}

// designResult is what one design did on one night.
type designResult struct {
	wall        time.Duration
	answering   time.Duration
	paid, again int
	usage       fakexai.Usage
	statuses    map[string]int
	handedBack  int
	distinct    map[string]int
}

// BenchmarkAnalysisDesigns runs, in one run and on the same portfolios and
// the same local xAI server, the design of commit todaysDesign (one call
// per portfolio scoring every position) and this tree's two levels (each
// ticker scored once, then each portfolio's overview by the model, or by
// the rules), at 1,000 portfolios over 1,500 tickers and 10,000 over
// 4,000. The server writes typical answer lengths, samples every score as
// a model does, and answers at a model's speed on a clock scaled by
// designScale; it counts what it was paid for. The design of
// todaysDesign runs with its own code, built in a temporary git worktree of
// that commit (testdata/legacydriver).
func BenchmarkAnalysisDesigns(b *testing.B) {
	driver := buildLegacyDriver(b)
	for _, size := range designSizes {
		night := newDesignNight(size.portfolios, size.tickers)
		path := filepath.Join(b.TempDir(), "night.json")
		body, err := json.Marshal(night)
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, body, 0o644); err != nil {
			b.Fatal(err)
		}
		gen := &fakexai.Generator{Lengths: fakexai.TypicalLengths, Sample: 10, Seed: designSeed,
			TokensPerSecond: designTokensPerSecond * designScale, FirstToken: designFirstToken / designScale}
		srv := fakexai.New(b, fakexai.Generate(gen))
		srv.RequireKey = benchKey
		held := map[string]bool{}
		for _, p := range night.Portfolios {
			for _, q := range p.Positions {
				held[q.Symbol] = true
			}
		}
		for _, design := range []string{"today", deploy.ManagerModel, deploy.ManagerRules} {
			srv.Reset()
			var res designResult
			if design == "today" {
				res = runLegacy(b, driver, path, srv)
			} else {
				res = runTwoLevels(b, night, srv, design)
			}
			name := fmt.Sprintf("portfolios=%d/tickers=%d/design=%s", size.portfolios, size.tickers, design)
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
				}
				reportDesign(b, res, len(night.Portfolios), len(held))
			})
		}
	}
}

func reportDesign(b *testing.B, r designResult, portfolios, tickers int) {
	u := r.usage
	b.ReportMetric(float64(r.paid), "calls")
	b.ReportMetric(float64(r.again), "paid-again")
	b.ReportMetric(float64(u.PromptTokens), "input-tokens")
	b.ReportMetric(float64(u.CachedTokens), "cached-tokens")
	b.ReportMetric(float64(u.CompletionTokens), "completion-tokens")
	b.ReportMetric(float64(u.ReasoningTokens), "reasoning-tokens")
	b.ReportMetric(r.wall.Seconds(), "wall-s")
	b.ReportMetric(r.wall.Minutes()*designScale, "prod-wall-min")
	b.ReportMetric(r.answering.Minutes()*designScale/designConcurrency, "answering-min")
	b.ReportMetric(float64(tickers), "tickers")
	b.ReportMetric(float64(portfolios), "portfolios")
	b.ReportMetric(float64(r.statuses[analyzer.OutcomeOK]), "ok")
	b.ReportMetric(float64(r.statuses[analyzer.OutcomeFallback]), "fallback")
	b.ReportMetric(float64(r.handedBack), "handed-back")
	most, sum := 0, 0
	for _, n := range r.distinct {
		most, sum = max(most, n), sum+n
	}
	b.ReportMetric(float64(most), "max-scores/ticker")
	if len(r.distinct) > 0 {
		b.ReportMetric(float64(sum)/float64(len(r.distinct)), "mean-scores/ticker")
	}
}

// buildLegacyDriver builds testdata/legacydriver in a temporary git
// worktree of todaysDesign, and removes the worktree when the benchmark
// ends. It returns the binary.
func buildLegacyDriver(b *testing.B) string {
	b.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	tree := filepath.Join(dir, "tree")
	run := func(wd string, name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Dir = wd
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run(root, "git", "worktree", "add", "--detach", tree, todaysDesign)
	b.Cleanup(func() {
		cmd := exec.Command("git", "worktree", "remove", "--force", tree)
		cmd.Dir = root
		_ = cmd.Run()
	})
	src, err := os.ReadFile(filepath.Join("testdata", "legacydriver", "main.go"))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tree, "cmd", "legacydriver"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "cmd", "legacydriver", "main.go"), src, 0o644); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, "legacydriver")
	run(tree, "go", "build", "-o", bin, "./cmd/legacydriver")
	return bin
}

// runLegacy runs todaysDesign's analysis of the night at path against srv.
func runLegacy(b *testing.B, driver, path string, srv *fakexai.Server) designResult {
	b.Helper()
	cmd := exec.Command(driver, "-data", path, "-url", srv.URL, "-key", benchKey, "-concurrency", fmt.Sprint(designConcurrency), "-scale", fmt.Sprint(designScale))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("legacy driver: %v", err)
	}
	var r struct {
		WallSeconds float64        `json:"wallSeconds"`
		Statuses    map[string]int `json:"statuses"`
		Failed      []string       `json:"failed"`
		Distinct    map[string]int `json:"distinct"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		b.Fatalf("legacy driver's output %q: %v", out, err)
	}
	if len(r.Failed) > 0 {
		b.Fatalf("legacy driver: %d portfolios failed: %v", len(r.Failed), r.Failed[:min(3, len(r.Failed))])
	}
	return designResult{wall: time.Duration(r.WallSeconds * float64(time.Second)), answering: srv.Answering(), paid: srv.Paid(), again: srv.RepeatedPaid(),
		usage: srv.Usage(), statuses: r.Statuses, distinct: r.Distinct}
}

// designPortfolios are the night's shared tables for the analyzer.
type designPortfolios map[string][]analyzer.Holding

func (d designPortfolios) Names(context.Context) ([]string, error) {
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

func (d designPortfolios) Holdings(_ context.Context, name string) ([]analyzer.Holding, []analysis.Excluded, error) {
	h, ok := d[name]
	if !ok {
		return nil, nil, analyzer.ErrUnknownPortfolio
	}
	return h, nil, nil
}

func (d designPortfolios) Symbols(context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, h := range d {
		for _, p := range h {
			if s, err := symbol.Normalize(p.Symbol); err == nil && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

type designMarket map[string]indicators.Snapshot

func (d designMarket) Latest(_ context.Context, sym string) (indicators.Snapshot, bool, error) {
	s, ok := d[sym]
	return s, ok, nil
}

// runTwoLevels runs this tree's analysis of the night as deployed: the
// fan-out (the tickers' batches planned and queued first), then the queue
// consumed designConcurrency at a time, each message in an invocation with
// the (scaled) deployed deadline, a handed-back message received again at
// the tail.
func runTwoLevels(b *testing.B, night designNight, srv *fakexai.Server, manager string) designResult {
	b.Helper()
	ports := designPortfolios{}
	for _, p := range night.Portfolios {
		for _, q := range p.Positions {
			ports[p.Name] = append(ports[p.Name], analyzer.Holding{Symbol: q.Symbol, Quantity: q.Quantity, CostBasis: q.CostBasis})
		}
	}
	analyses, queue := &memanalysis.Analyses{}, &memanalysis.Queue{}
	llm := xai.New(xai.Options{URL: srv.URL, APIKey: benchKey, Model: deploy.DefaultXAIModel, MaxCompletionTokens: deploy.DefaultXAIMaxCompletionTokens,
		Reserve: deploy.DefaultXAIReserve / designScale, AttemptTimeout: deploy.DefaultXAIAttemptTimeout / designScale,
		Retry: &retry.Policy{Attempts: 3, Base: time.Second / designScale, Cap: 20 * time.Second / designScale, MaxRetryAfter: 30 * time.Second / designScale}})
	svc := analyzer.New(analyzer.Options{Portfolios: ports, MarketData: designMarket(night.snaps), Analyses: analyses, Ledger: memanalysis.NewLedger(nil),
		Queue: queue, LLM: llm, Manager: manager, MaxCompletionTokens: deploy.DefaultXAIMaxCompletionTokens, ReasoningEffort: deploy.DefaultXAIReasoningEffort,
		LastTradingDay: func(time.Time) string { return night.LastTradingDay }, Lease: deploy.AnalyzePortfolio.Timeout / designScale,
		WaitPoll: 2 * time.Second / designScale, MinWork: 60 * time.Second / designScale, PlannedLease: analyzer.DefaultPlannedLease / designScale})
	deadline := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), deploy.AnalyzePortfolio.Timeout/designScale)
	}
	start := time.Now()
	ctx, cancel := deadline()
	if _, err := svc.Handle(ctx, analyzer.Event{PortfolioName: analyzer.AllPortfolios}); err != nil {
		b.Fatalf("fan-out: %v", err)
	}
	cancel()
	msgs := make(chan analysisqueue.Message, len(night.Portfolios)+1000)
	var pending sync.WaitGroup
	for _, m := range queue.Sent() {
		pending.Add(1)
		msgs <- m
	}
	res := designResult{statuses: map[string]int{}, distinct: map[string]int{}}
	var mu sync.Mutex
	var workers sync.WaitGroup
	for range designConcurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for m := range msgs {
				body, err := m.Encode()
				if err != nil {
					b.Error(err)
					pending.Done()
					continue
				}
				ctx, cancel := deadline()
				resp, err := svc.HandleQueue(ctx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: m.Label(), Body: body, EventSource: "aws:sqs",
					Attributes: map[string]string{"ApproximateReceiveCount": "1"}}}})
				cancel()
				if err == nil && len(resp.BatchItemFailures) > 0 {
					mu.Lock()
					res.handedBack++
					mu.Unlock()
					msgs <- m // received again, at the tail
					continue
				}
				pending.Done()
			}
		}()
	}
	pending.Wait()
	close(msgs)
	workers.Wait()
	res.wall = time.Since(start)
	scores := map[string][]int{}
	for _, r := range analyses.All() {
		res.statuses[r.Status]++
		for _, t := range r.Result.Tickers {
			if !slices.Contains(scores[t.Ticker], t.Score) {
				scores[t.Ticker] = append(scores[t.Ticker], t.Score)
			}
		}
	}
	for sym, s := range scores {
		res.distinct[sym] = len(s)
	}
	if n := len(analyses.All()); n != len(night.Portfolios) {
		b.Fatalf("%s manager: %d analyses for %d portfolios", manager, n, len(night.Portfolios))
	}
	res.answering, res.paid, res.again, res.usage = srv.Answering(), srv.Paid(), srv.RepeatedPaid(), srv.Usage()
	return res
}
