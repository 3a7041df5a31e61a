// Package memanalysis holds the analyzer's stores in memory, with the
// semantics of the DynamoDB repositories (pkg/analysisdb, pkg/reservationdb):
// for unit tests of the use case, and for benchmarks whose size would keep
// dynalite busy for hours. It is development tooling: nothing in pkg/ uses
// it outside tests.
package memanalysis

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/zsmseven/backend/pkg/analysis"
	"github.com/zsmseven/backend/pkg/analysisqueue"
	"github.com/zsmseven/backend/pkg/analyzer"
)

// ErrNotOwner is the in-memory ErrNotOwner: the claim or score entry is
// another run's.
var ErrNotOwner = errors.New("not the owner")

// ErrExists means an analysis with the same portfolio and timestamp is
// stored.
var ErrExists = errors.New("an analysis with this portfolio and timestamp already exists")

// Analyses is an in-memory analyzer.Analyses.
type Analyses struct {
	mu    sync.Mutex
	items []analysis.Record
	// PutErr, when set, fails every Put.
	PutErr error
}

var _ analyzer.Analyses = (*Analyses)(nil)

// Put stores r, never over another of the same portfolio and timestamp.
func (m *Analyses) Put(_ context.Context, r analysis.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.PutErr != nil {
		return m.PutErr
	}
	for _, x := range m.items {
		if x.Portfolio == r.Portfolio && x.Timestamp.Equal(r.Timestamp) {
			return ErrExists
		}
	}
	m.items = append(m.items, r)
	return nil
}

// Recent is a portfolio's newest records, newest first, at most limit.
func (m *Analyses) Recent(_ context.Context, p string, limit int) ([]analysis.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []analysis.Record
	for _, x := range m.items {
		if x.Portfolio == p {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b analysis.Record) int { return b.Timestamp.Compare(a.Timestamp) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// All returns every stored record.
func (m *Analyses) All() []analysis.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.items)
}

// Ledger is an in-memory analyzer.Ledger.
type Ledger struct {
	mu     sync.Mutex
	claims map[string]analysis.Claim
	scores map[string]analysis.ScoreEntry
	// Now is the clock leases are compared with (time.Now if nil).
	Now func() time.Time
	// SaveErr fails every Save; SettleErr every Settle.
	SaveErr, SettleErr error
}

var _ analyzer.Ledger = (*Ledger)(nil)

// NewLedger returns an empty ledger on the clock now (time.Now if nil).
func NewLedger(now func() time.Time) *Ledger {
	return &Ledger{claims: map[string]analysis.Claim{}, scores: map[string]analysis.ScoreEntry{}, Now: now}
}

func (m *Ledger) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Claim takes c's key when free, or over a claim the request may take
// (analysis.Claim.TakeableBy), keeping what it holds; else it returns the
// holder. c.State analysis.StatePlanned writes a planned claim (the
// fan-out's); anything else a pending one.
func (m *Ledger) Claim(_ context.Context, c analysis.Claim) (analysis.Claim, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	state := analysis.StatePending
	if c.State == analysis.StatePlanned {
		state = analysis.StatePlanned
	}
	cur, ok := m.claims[c.Key]
	switch {
	case !ok:
		c.State, c.Queued, c.Version = state, false, 1
		m.claims[c.Key] = c
		return c, true, nil
	case cur.TakeableBy(c, m.now()):
		cur.Owner, cur.LeaseUntil, cur.State, cur.Version = c.Owner, c.LeaseUntil, state, cur.Version+1
		if len(cur.Members) == 0 {
			cur.Members = c.Members
		}
		m.claims[c.Key] = cur
		cur.Answers = slices.Clone(cur.Answers)
		return cur, true, nil
	}
	cur.Answers = slices.Clone(cur.Answers)
	return cur, false, nil
}

// owned checks a write of c: its owner's, raising the version.
func (m *Ledger) owned(c analysis.Claim) error {
	if cur := m.claims[c.Key]; cur.Owner != c.Owner || c.Version <= cur.Version {
		return ErrNotOwner
	}
	return nil
}

// Save writes the owner's claim (its version raised).
func (m *Ledger) Save(_ context.Context, c analysis.Claim) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.SaveErr != nil {
		return m.SaveErr
	}
	if err := m.owned(c); err != nil {
		return err
	}
	c.Answers = slices.Clone(c.Answers)
	m.claims[c.Key] = c
	return nil
}

// Complete marks the owner's claim done.
func (m *Ledger) Complete(_ context.Context, c analysis.Claim) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.owned(c); err != nil {
		return err
	}
	c.State = analysis.StateDone
	m.claims[c.Key] = c
	return nil
}

// Release ends the owner's lease, keeping what the claim holds.
func (m *Ledger) Release(_ context.Context, c analysis.Claim) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.owned(c); err != nil {
		return err
	}
	c.State, c.LeaseUntil = analysis.StatePending, time.UnixMilli(0)
	m.claims[c.Key] = c
	return nil
}

// Scores reads score entries by key.
func (m *Ledger) Scores(_ context.Context, keys []string) (map[string]analysis.ScoreEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]analysis.ScoreEntry{}
	for _, k := range keys {
		if e, ok := m.scores[k]; ok {
			out[k] = e
		}
	}
	return out, nil
}

// Assign writes a pending score entry unless the key has one.
func (m *Ledger) Assign(_ context.Context, e analysis.ScoreEntry) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.scores[e.Key]; ok {
		return false, nil
	}
	e.State = analysis.StatePending
	m.scores[e.Key] = e
	return true, nil
}

// Replan writes e, pending, over the entry of its key if that one is still
// pending in batch from.
func (m *Ledger) Replan(_ context.Context, e analysis.ScoreEntry, from string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if cur, ok := m.scores[e.Key]; !ok || cur.State != analysis.StatePending || cur.Batch != from {
		return false, nil
	}
	e.State = analysis.StatePending
	m.scores[e.Key] = e
	return true, nil
}

// Settle writes a done score entry, if its batch still owns it.
func (m *Ledger) Settle(_ context.Context, e analysis.ScoreEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.SettleErr != nil {
		return m.SettleErr
	}
	if m.scores[e.Key].Batch != e.Batch {
		return ErrNotOwner
	}
	e.State = analysis.StateDone
	m.scores[e.Key] = e
	return nil
}

// Claims returns the claims of a kind.
func (m *Ledger) Claims(kind string) []analysis.Claim {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []analysis.Claim
	for _, c := range m.claims {
		if c.Kind == kind {
			out = append(out, c)
		}
	}
	return out
}

// TickerScores returns the score entries of a ticker.
func (m *Ledger) TickerScores(ticker string) []analysis.ScoreEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []analysis.ScoreEntry
	for _, e := range m.scores {
		if e.Ticker == ticker {
			out = append(out, e)
		}
	}
	return out
}

// Hold makes the claim of key held, pending, by owner until lease (a test's
// other run).
func (m *Ledger) Hold(c analysis.Claim, owner string, lease time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c.Owner, c.State, c.LeaseUntil = owner, analysis.StatePending, lease
	m.claims[c.Key] = c
}

// Queue is an in-memory analyzer.Queue: it records what is sent; Fail names
// the messages (by label) it refuses.
type Queue struct {
	mu   sync.Mutex
	sent []analysisqueue.Message
	Fail map[string]bool
}

var _ analyzer.Queue = (*Queue)(nil)

// Send records msgs, but those Fail names.
func (q *Queue) Send(_ context.Context, msgs []analysisqueue.Message) (int, []analyzer.SendFailure, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var failed []analyzer.SendFailure
	n := 0
	for _, m := range msgs {
		if q.Fail[m.Label()] {
			failed = append(failed, analyzer.SendFailure{Message: m, Code: "InternalError", Reason: "try again"})
			continue
		}
		q.sent = append(q.sent, m)
		n++
	}
	return n, failed, nil
}

// Sent returns the messages sent, in order.
func (q *Queue) Sent() []analysisqueue.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.sent)
}

// Reset forgets the messages sent.
func (q *Queue) Reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sent = nil
}
