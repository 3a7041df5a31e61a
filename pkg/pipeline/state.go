package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// invocation is what one Handle call learns as it goes: whether the run
// stopped, and what the store holds. The states are read once and kept
// current by this invocation's own writes; the consumers of other message
// groups write them too, so the work that must be done once (claim.go) reads
// them again before deciding.
type invocation struct {
	// stopped is the refusal that stopped the run (nil while it goes on).
	stopped error
	// refreshed: the key was re-read once already.
	refreshed bool
	// owner names this invocation in the claims it takes.
	owner string
	// market is the market's state (nil until read).
	market *coverage.Market
	// nights caches the state of each night met (known: one is stored).
	nights map[string]nightInfo
	// sessions are the sessions' states read or written; windows the
	// nights whose window's states were all read.
	sessions map[string]coverage.Session
	windows  map[string][]string
}

type nightInfo struct {
	known bool
	night coverage.Night
}

func newInvocation() *invocation {
	return &invocation{owner: newOwner(), nights: map[string]nightInfo{}, sessions: map[string]coverage.Session{}, windows: map[string][]string{}}
}

// newOwner is a random name for the claims of one invocation.
func newOwner() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// marketState returns the market's state, read once per invocation.
func (p *ProcessTicker) marketState(ctx context.Context, inv *invocation) (coverage.Market, error) {
	if inv.market == nil {
		m, err := p.History.Market(ctx)
		if err != nil {
			return coverage.Market{}, fmt.Errorf("market state: %w", err)
		}
		inv.market = &m
	}
	return *inv.market, nil
}

// rereadMarket reads the market's state again (another consumer may have
// changed it) and keeps it. A closure learnt meanwhile changes the windows:
// they are computed again.
func (p *ProcessTicker) rereadMarket(ctx context.Context, inv *invocation) (coverage.Market, error) {
	before := inv.market
	inv.market = nil
	m, err := p.marketState(ctx, inv)
	if err != nil {
		inv.market = before
		return m, err
	}
	if before != nil && len(before.Closures) != len(m.Closures) {
		clear(inv.windows)
	}
	return m, nil
}

// setLedger records how far the ledger is complete, and keeps it.
func (p *ProcessTicker) setLedger(ctx context.Context, inv *invocation, from, through string) error {
	if err := p.History.SetLedger(ctx, from, through); err != nil {
		return fmt.Errorf("market state: %w", err)
	}
	if inv.market != nil && inv.market.LedgerThrough <= through {
		inv.market.LedgerFrom, inv.market.LedgerThrough = from, through
	}
	return nil
}

// movePlanFrom records the plan's first session, and keeps it.
func (p *ProcessTicker) movePlanFrom(ctx context.Context, inv *invocation, date string) error {
	if err := p.History.MovePlanFrom(ctx, date); err != nil {
		return fmt.Errorf("market state: %w", err)
	}
	if inv.market != nil && inv.market.PlanFrom < date {
		inv.market.PlanFrom = date
	}
	return nil
}

// nightState returns the state of the night of date, read once per
// invocation.
func (p *ProcessTicker) nightState(ctx context.Context, inv *invocation, date string) (nightInfo, error) {
	if info, ok := inv.nights[date]; ok {
		return info, nil
	}
	n, known, err := p.History.Night(ctx, date)
	if err != nil {
		return nightInfo{}, fmt.Errorf("state of the night of %s: %w", date, err)
	}
	if !known {
		n = coverage.Night{Date: date}
	}
	info := nightInfo{known: known, night: n}
	inv.nights[date] = info
	return info, nil
}

// rereadNight reads the state of the night of date again and keeps it.
func (p *ProcessTicker) rereadNight(ctx context.Context, inv *invocation, date string) (nightInfo, error) {
	delete(inv.nights, date)
	return p.nightState(ctx, inv, date)
}

// addNightPart records a day message's part done, and keeps it.
func (p *ProcessTicker) addNightPart(ctx context.Context, inv *invocation, date, part string) error {
	if err := p.History.AddNightPart(ctx, date, part); err != nil {
		return fmt.Errorf("state of the night of %s: %w", date, err)
	}
	info := inv.nights[date]
	info.known, info.night.Date = true, date
	if !info.night.HasPart(part) {
		info.night.Parts = append(slices.Clone(info.night.Parts), part)
	}
	inv.nights[date] = info
	return nil
}

// setFallback records the night of date without a grouped answer, and
// keeps it.
func (p *ProcessTicker) setFallback(ctx context.Context, inv *invocation, date string) error {
	if err := p.History.SetFallback(ctx, date); err != nil {
		return fmt.Errorf("state of the night of %s: %w", date, err)
	}
	info := inv.nights[date]
	info.known, info.night.Date, info.night.Fallback = true, date, true
	inv.nights[date] = info
	return nil
}

// window returns the sessions the indicators read for the night of date
// (by the calendar with the closures learnt) and their states, read once per
// invocation.
func (p *ProcessTicker) window(ctx context.Context, inv *invocation, date string) ([]string, map[string]coverage.Session, error) {
	if w, ok := inv.windows[date]; ok {
		return w, inv.sessions, nil
	}
	m, err := p.marketState(ctx, inv)
	if err != nil {
		return nil, nil, err
	}
	w := coverage.Window(m.Calendar(), date, p.sessions())
	if len(w) == 0 {
		// A learnt closure on the night's own day: nothing to read.
		w = []string{date}
	}
	ss, err := p.History.Sessions(ctx, w[0], w[len(w)-1])
	if err != nil {
		return nil, nil, fmt.Errorf("sessions of the window of %s: %w", date, err)
	}
	for d, s := range ss {
		if _, mine := inv.sessions[d]; !mine {
			inv.sessions[d] = s
		}
	}
	inv.windows[date] = w
	return w, inv.sessions, nil
}

// rereadSession reads the state of session date again and keeps it (the
// zero state when none is stored).
func (p *ProcessTicker) rereadSession(ctx context.Context, inv *invocation, date string) (coverage.Session, error) {
	s, ok, err := p.History.Session(ctx, date)
	if err != nil {
		return coverage.Session{}, fmt.Errorf("state of session %s: %w", date, err)
	}
	if !ok {
		s = coverage.Session{}
	}
	inv.sessions[date] = s
	return s, nil
}

// putSession writes a session's state and keeps it.
func (p *ProcessTicker) putSession(ctx context.Context, inv *invocation, s coverage.Session) error {
	if err := p.History.PutSession(ctx, s); err != nil {
		return fmt.Errorf("state of session %s: %w", s.Date, err)
	}
	inv.sessions[s.Date] = s
	return nil
}

// laterStored reports whether a session after date is stored (among those
// this invocation knows): an empty answer for date is then not a day not
// published yet.
func laterStored(inv *invocation, date string) bool {
	for d, s := range inv.sessions {
		if d > date && s.Status == coverage.Stored {
			return true
		}
	}
	return false
}

// learnClosure records date as a closure the rule calendar does not know,
// and forgets the windows computed without it.
func (p *ProcessTicker) learnClosure(ctx context.Context, inv *invocation, date string) error {
	m, err := p.marketState(ctx, inv)
	if err != nil {
		return err
	}
	if m.Closed(date) {
		return nil
	}
	c := marketdata.Closure{Date: date, Reason: "no session published on two nights while later ones were (learnt)"}
	if err := p.History.AddClosure(ctx, c); err != nil {
		return fmt.Errorf("market state: %w", err)
	}
	m.Closures = append(slices.Clone(m.Closures), c)
	inv.market = &m
	clear(inv.windows)
	return nil
}
