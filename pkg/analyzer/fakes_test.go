package analyzer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

type holding struct {
	positions []portfoliodb.Position
	invalid   []portfoliodb.Invalid
}

// fakePortfolios serves holdings from a map, like the shared-table reader.
type fakePortfolios map[string]holding

func (f fakePortfolios) List(context.Context) ([]portfoliodb.Portfolio, error) {
	var out []portfoliodb.Portfolio
	for name := range f {
		out = append(out, portfoliodb.Portfolio{ID: "id-" + name, Name: name})
	}
	return out, nil
}

func (f fakePortfolios) Holdings(_ context.Context, name string) (portfoliodb.Portfolio, []portfoliodb.Position, []portfoliodb.Invalid, error) {
	h, ok := f[name]
	if !ok {
		return portfoliodb.Portfolio{}, nil, nil, fmt.Errorf("holdings of %q: %w", name, analyzer.ErrUnknownPortfolio)
	}
	return portfoliodb.Portfolio{ID: "id-" + name, Name: name}, h.positions, h.invalid, nil
}

// fakeTickers serves rows from a map and records the peak concurrency.
type fakeTickers struct {
	rows     map[string]tickerdb.Row
	err      error
	delay    time.Duration
	calls    atomic.Int64
	inFlight atomic.Int64
	peak     atomic.Int64
}

func (f *fakeTickers) Latest(ctx context.Context, t string) (tickerdb.Row, bool, error) {
	f.calls.Add(1)
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return tickerdb.Row{}, false, ctx.Err()
		}
	}
	if f.err != nil {
		return tickerdb.Row{}, false, f.err
	}
	r, ok := f.rows[t]
	return r, ok, nil
}

// memStore is an in-memory analyses store with the repository's semantics.
type memStore struct {
	mu     sync.Mutex
	items  []analysisdb.Item
	onPut  func()
	putErr error
}

func (m *memStore) Put(_ context.Context, it analysisdb.Item) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.putErr != nil {
		return m.putErr
	}
	for _, x := range m.items {
		if x.Portfolio == it.Portfolio && x.Timestamp.Equal(it.Timestamp) {
			return analysisdb.ErrExists
		}
	}
	m.items = append(m.items, it)
	if m.onPut != nil {
		m.onPut()
	}
	return nil
}

func (m *memStore) Recent(_ context.Context, p string, limit int) ([]analysisdb.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []analysisdb.Item
	for _, x := range m.items {
		if x.Portfolio == p {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b analysisdb.Item) int { return b.Timestamp.Compare(a.Timestamp) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *memStore) all() []analysisdb.Item {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.items)
}

var errBoom = errors.New("boom")

func answerJSON(scores map[string]int) string {
	var b strings.Builder
	b.WriteString(`{"summary":"Two of three holdings look fine.","analysis":"Full text.","tickers":[`)
	keys := make([]string, 0, len(scores))
	for k := range scores {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"ticker":%q,"score":%d,"signal":"hold","rationale":"Because of the data."}`, k, scores[k])
	}
	b.WriteString("]}")
	return b.String()
}
