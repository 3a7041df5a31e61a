// Command legacydriver runs the analysis as it was designed at commit
// 4046efd — one call per portfolio of up to 50 positions, every position
// scored inside its portfolio's call — over the portfolios of a data file,
// against the local xAI server of the benchmark, with the design's own
// analyzer, prompt and xAI client and in-memory stores. `make bench`
// (BenchmarkAnalysisDesigns) copies it into a temporary git worktree of
// that commit, builds it there and runs it beside the design of today's
// tree, on the same portfolios and the same server. It is not part of this
// tree's build (testdata).
//
//	go run ./cmd/legacydriver -data night.json -url http://127.0.0.1:port/v1/chat/completions -key K -concurrency 10 -scale 1000
//
// It prints one JSON object: the wall time, the outcomes, and each
// ticker's distinct scores across the portfolios.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/reservationdb"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/tickerdb"
	"github.com/zsmseven/backend/pkg/xai"
)

type night struct {
	LastTradingDay string `json:"lastTradingDay"`
	Portfolios     []struct {
		Name      string `json:"name"`
		Positions []struct {
			Symbol    string   `json:"symbol"`
			Quantity  *float64 `json:"quantity"`
			CostBasis *float64 `json:"costBasis"`
		} `json:"positions"`
	} `json:"portfolios"`
	Snapshots map[string]map[string]json.RawMessage `json:"snapshots"`
}

type result struct {
	WallSeconds float64        `json:"wallSeconds"`
	Statuses    map[string]int `json:"statuses"`
	Failed      []string       `json:"failed"`
	// Distinct is, for each ticker, how many different scores it got
	// across the portfolios holding it.
	Distinct map[string]int `json:"distinct"`
}

func main() {
	data := flag.String("data", "", "the night's data file")
	url := flag.String("url", "", "the chat completions URL")
	key := flag.String("key", "", "the API key")
	concurrency := flag.Int("concurrency", deploy.DefaultAnalysisConcurrency, "portfolios at once")
	scale := flag.Int("scale", 1, "every duration the deployed system waits is divided by it")
	flag.Parse()
	if err := run(*data, *url, *key, *concurrency, time.Duration(*scale)); err != nil {
		fmt.Fprintln(os.Stderr, "legacydriver:", err)
		os.Exit(1)
	}
}

func run(path, url, key string, concurrency int, scale time.Duration) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var n night
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	ports := portfolios{}
	for _, p := range n.Portfolios {
		var pos []portfoliodb.Position
		for _, q := range p.Positions {
			pos = append(pos, portfoliodb.Position{Symbol: q.Symbol, Quantity: q.Quantity, CostBasis: q.CostBasis})
		}
		ports[p.Name] = pos
	}
	rows := tickers{}
	for sym, fields := range n.Snapshots {
		var s indicators.Snapshot
		if err := json.Unmarshal(fields["asOf"], &s.AsOf); err != nil {
			return err
		}
		if err := json.Unmarshal(fields["price"], &s.Price); err != nil {
			return err
		}
		for _, f := range indicators.Fields {
			if raw, ok := fields[f.Name]; ok {
				var v float64
				if err := json.Unmarshal(raw, &v); err != nil {
					return err
				}
				f.Set(&s, v)
			}
		}
		s.Bars = 300
		rows[sym] = tickerdb.Row{Ticker: sym, Snapshot: s}
	}
	llm := xai.New(xai.Options{URL: url, APIKey: key, Model: deploy.DefaultXAIModel, MaxCompletionTokens: deploy.DefaultXAIMaxCompletionTokens,
		Reserve: deploy.DefaultXAIReserve / scale, AttemptTimeout: deploy.DefaultXAIAttemptTimeout / scale,
		Retry: &retry.Policy{Attempts: 3, Base: time.Second / scale, Cap: 20 * time.Second / scale, MaxRetryAfter: 30 * time.Second / scale}})
	store := &store{items: map[string][]analysisdb.Item{}}
	svc := analyzer.New(analyzer.Options{
		Portfolios: ports, TickerData: rows, Store: store, Reservations: &reservations{items: map[string]reservationdb.Reservation{}},
		LLM: llm, MaxCompletionTokens: deploy.DefaultXAIMaxCompletionTokens, ReasoningEffort: deploy.DefaultXAIReasoningEffort,
		LastTradingDay: func(time.Time) string { return n.LastTradingDay },
		WaitPoll:       2 * time.Second / scale, MinWork: 60 * time.Second / scale,
	})
	names := make(chan string)
	res := result{Statuses: map[string]int{}, Distinct: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				ctx, cancel := context.WithTimeout(context.Background(), deploy.AnalyzePortfolio.Timeout/scale)
				out, err := svc.Handle(ctx, analyzer.Event{PortfolioName: name})
				cancel()
				mu.Lock()
				if err != nil {
					res.Failed = append(res.Failed, name+": "+err.Error())
				} else {
					res.Statuses[out.Portfolios[0].Status]++
				}
				mu.Unlock()
			}
		}()
	}
	for _, p := range n.Portfolios {
		names <- p.Name
	}
	close(names)
	wg.Wait()
	res.WallSeconds = time.Since(start).Seconds()
	scores := map[string][]int{}
	for _, items := range store.items {
		for _, it := range items {
			for _, t := range it.Result.Tickers {
				if !slices.Contains(scores[t.Ticker], t.Score) {
					scores[t.Ticker] = append(scores[t.Ticker], t.Score)
				}
			}
		}
	}
	for sym, s := range scores {
		res.Distinct[sym] = len(s)
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// portfolios are the shared tables in memory.
type portfolios map[string][]portfoliodb.Position

func (p portfolios) List(context.Context) ([]portfoliodb.Portfolio, error) {
	var out []portfoliodb.Portfolio
	for name := range p {
		out = append(out, portfoliodb.Portfolio{ID: name, Name: name})
	}
	return out, nil
}

func (p portfolios) Holdings(_ context.Context, name string) (portfoliodb.Portfolio, []portfoliodb.Position, []portfoliodb.Invalid, error) {
	pos, ok := p[name]
	if !ok {
		return portfoliodb.Portfolio{}, nil, nil, fmt.Errorf("%q: %w", name, analyzer.ErrUnknownPortfolio)
	}
	return portfoliodb.Portfolio{ID: name, Name: name}, pos, nil, nil
}

// tickers is ticker-data in memory.
type tickers map[string]tickerdb.Row

func (t tickers) Latest(_ context.Context, sym string) (tickerdb.Row, bool, error) {
	r, ok := t[sym]
	return r, ok, nil
}

// store is portfolio-analyses in memory.
type store struct {
	mu    sync.Mutex
	items map[string][]analysisdb.Item
}

func (s *store) Put(_ context.Context, it analysisdb.Item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items[it.Portfolio] = append(s.items[it.Portfolio], it)
	return nil
}

func (s *store) Recent(_ context.Context, p string, limit int) ([]analysisdb.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.items[p])
	slices.SortFunc(out, func(a, b analysisdb.Item) int { return b.Timestamp.Compare(a.Timestamp) })
	return out[:min(limit, len(out))], nil
}

// reservations are analysis-reservations in memory.
type reservations struct {
	mu    sync.Mutex
	items map[string]reservationdb.Reservation
}

func (m *reservations) Reserve(_ context.Context, r reservationdb.Reservation) (reservationdb.Reservation, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.State = reservationdb.StatePending
	cur, ok := m.items[r.Key]
	if ok && !(cur.State == reservationdb.StatePending && cur.LeaseUntil.Before(time.Now())) {
		return cur, false, nil
	}
	m.items[r.Key] = r
	return r, true, nil
}

func (m *reservations) Complete(_ context.Context, r reservationdb.Reservation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.State = reservationdb.StateDone
	m.items[r.Key] = r
	return nil
}

func (m *reservations) Release(_ context.Context, key, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.items, key)
	return nil
}
