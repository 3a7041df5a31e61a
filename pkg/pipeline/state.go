package pipeline

import (
	"context"
	"fmt"
	"slices"

	"github.com/zsmseven/backend/pkg/coverage"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// invocation is what one Handle call learns as it goes: whether the run
// stopped, and what the store holds (read once, kept current by this
// invocation's own writes; one consumer per message group writes them).
type invocation struct {
	// stopped is the refusal that stopped the run (nil while it goes on).
	stopped error
	// refreshed: the key was re-read once already.
	refreshed bool
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
	return &invocation{nights: map[string]nightInfo{}, sessions: map[string]coverage.Session{}, windows: map[string][]string{}}
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

// putMarket writes the market's state and keeps it.
func (p *ProcessTicker) putMarket(ctx context.Context, inv *invocation, m coverage.Market) error {
	if err := p.History.PutMarket(ctx, m); err != nil {
		return fmt.Errorf("market state: %w", err)
	}
	inv.market = &m
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

// putNight writes the state of a night and keeps it.
func (p *ProcessTicker) putNight(ctx context.Context, inv *invocation, n coverage.Night) error {
	if err := p.History.PutNight(ctx, n); err != nil {
		return fmt.Errorf("state of the night of %s: %w", n.Date, err)
	}
	inv.nights[n.Date] = nightInfo{known: true, night: n}
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

// putSession writes a session's state and keeps it.
func (p *ProcessTicker) putSession(ctx context.Context, inv *invocation, s coverage.Session) error {
	if err := p.History.PutSession(ctx, s); err != nil {
		return fmt.Errorf("state of session %s: %w", s.Date, err)
	}
	inv.sessions[s.Date] = s
	return nil
}

// laterStored reports whether a session after date is stored (among those
// this invocation knows): an empty answer for date is then a closure, not a
// day not published yet.
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
	m.Closures = append(slices.Clone(m.Closures), marketdata.Closure{Date: date, Reason: "no session published while later ones were (learnt)"})
	if err := p.putMarket(ctx, inv, m); err != nil {
		return err
	}
	clear(inv.windows)
	return nil
}
