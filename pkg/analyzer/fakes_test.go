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

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisdb"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/analyzer"
	"github.com/zsmseven/backend/pkg/portfoliodb"
	"github.com/zsmseven/backend/pkg/reservationdb"
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

// memReservations has reservationdb.Store's semantics in memory: a key is
// won when absent or pending with an expired lease; done is final.
type memReservations struct {
	mu    sync.Mutex
	items map[string]reservationdb.Reservation
	now   func() time.Time
	puts  int
}

func newReservations(now func() time.Time) *memReservations {
	return &memReservations{items: map[string]reservationdb.Reservation{}, now: now}
}

func (m *memReservations) Reserve(_ context.Context, r reservationdb.Reservation) (reservationdb.Reservation, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.puts++
	r.State = reservationdb.StatePending
	cur, ok := m.items[r.Key]
	if ok && !(cur.State == reservationdb.StatePending && cur.LeaseUntil.Before(m.now())) {
		return cur, false, nil
	}
	m.items[r.Key] = r
	return r, true, nil
}

func (m *memReservations) Complete(_ context.Context, r reservationdb.Reservation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items[r.Key].Owner != r.Owner {
		return reservationdb.ErrNotOwner
	}
	r.State = reservationdb.StateDone
	m.items[r.Key] = r
	return nil
}

func (m *memReservations) Release(_ context.Context, key, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items[key].Owner != owner {
		return reservationdb.ErrNotOwner
	}
	delete(m.items, key)
	return nil
}

func (m *memReservations) all() []reservationdb.Reservation {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []reservationdb.Reservation
	for _, r := range m.items {
		out = append(out, r)
	}
	return out
}

// fakeQueue records what the fan-out sends; fail names portfolios SQS
// refuses.
type fakeQueue struct {
	mu   sync.Mutex
	sent []analysisqueue.Message
	fail map[string]bool
}

func (q *fakeQueue) Send(_ context.Context, msgs []analysisqueue.Message) (int, []analysisqueue.Failure, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var failed []analysisqueue.Failure
	n := 0
	for _, m := range msgs {
		if q.fail[m.Portfolio] {
			failed = append(failed, analysisqueue.Failure{Portfolio: m.Portfolio, Code: "InternalError", Message: "try again"})
			continue
		}
		q.sent = append(q.sent, m)
		n++
	}
	return n, failed, nil
}

func (q *fakeQueue) portfolios() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for _, m := range q.sent {
		out = append(out, m.Portfolio)
	}
	return out
}

var errBoom = errors.New("boom")

// answerJSON is a valid complete answer scoring each symbol, with the
// signal of the score's band and the band's default action.
func answerJSON(scores map[string]int) string {
	keys := make([]string, 0, len(scores))
	for k := range scores {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(`{"tickers":[`)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		sig := analysis.SignalFor(min(max(scores[k], 0), 100))
		fmt.Fprintf(&b, `{"ticker":%q,"score":%d,"signal":%q,"rationale":"Because of the data.","confidence":"medium","key_risk":"market risk","action":%q}`,
			k, scores[k], sig, analysis.ActionsFor(sig)[0])
	}
	b.WriteString(`],"summary":"Two of three holdings look fine.","overall_risk":"medium","concentration_flags":[],"top_actions":[`)
	for i, k := range keys[:min(3, len(keys))] {
		if i > 0 {
			b.WriteString(",")
		}
		sig := analysis.SignalFor(min(max(scores[k], 0), 100))
		fmt.Fprintf(&b, `{"ticker":%q,"action":%q,"reason":"Most important."}`, k, analysis.ActionsFor(sig)[0])
	}
	b.WriteString(`],"analysis":"Full text."}`)
	return b.String()
}
