package fakepolygon

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/symbol"
)

// This file is the market the server simulates: the synthetic series
// (synthetic.go) as Polygon would serve it at the server's clock — up to the
// last published session, halted and closed days left out, as printed
// (adjusted=false) or split-adjusted as of the clock (adjusted=true, the
// default), with OTC tickers only when asked (include_otc=true), volumes
// revised some time after the close, and nothing before the plan's history
// — through its three endpoints, so that the per-ticker and the grouped
// answers agree to the cent for the same ticker and day.

// Split is a scripted stock split: To new shares for every From old ones,
// effective at the open of Date (YYYY-MM-DD). The market printed the bars
// before Date at the level before the split (the synthetic series times
// To/From); once the server's last closed session reaches Date, its adjusted
// answers divide them by To/From (volumes multiplied), as Polygon re-adjusts
// history when a split executes. The splits endpoint lists it from Listed
// on ("" from the start; a date: listed late), with execution date ListedAs
// until Corrected (a wrong date, corrected later; "" lists Date throughout).
type Split struct {
	Ticker   string
	Date     string
	From, To float64
	// Listed is the first New York date at the server's clock on which
	// the splits endpoint lists the split ("" always).
	Listed string
	// ListedAs is the execution date the endpoint gives before Corrected
	// (a New York date at the server's clock); "" gives Date.
	ListedAs, Corrected string
	// ID is its id in the splits answer ("" gives "E" and its place in
	// the list of scripted splits, from 1).
	ID string
	// AlsoID, when set, lists the split a second time under this id, as
	// Polygon has listed one split twice: the market split once.
	AlsoID string
}

// JunkTickers are the symbols of the junk rows the grouped answer carries
// unless Options.NoJunk: a preferred share as Polygon spells it (KIMpL, from
// the official Go client's test data), a ticker sent twice, and a zero
// close. A client must skip them and use the rest.
var JunkTickers = []string{"KIMpL", "ZZDUP", "ZZZERO"}

// Polygon's 403 bodies (facts.md): data the plan does not include, and a
// date before the plan's history.
const (
	BodyNotAuthorized = `{"status":"NOT_AUTHORIZED","request_id":"fakepolygon-not-authorized","message":"You are not entitled to this data. Please upgrade your plan at https://polygon.io/pricing"}`
	BodyOutsidePlan   = `{"status":"NOT_AUTHORIZED","request_id":"fakepolygon-timeframe","message":"Your plan doesn't include this data timeframe. Please upgrade your plan at https://polygon.io/pricing"}`
)

// market is the state behind the simulated endpoints. The Server's mutex
// guards it.
type market struct {
	splits           []Split
	halted           map[string]map[string]bool // ticker → dates without a bar
	closed           map[string]bool            // sessions the exchange did not open
	emptyOnce        map[string]int             // sessions answered empty that many more times
	asked            map[string]bool            // tickers asked about per ticker
	otc              map[string]bool
	notGrouped       map[string]bool
	groupedForbidden bool
}

func newMarket(o Options) market {
	m := market{splits: slices.Clone(o.Splits), halted: map[string]map[string]bool{}, closed: map[string]bool{}, asked: map[string]bool{},
		otc: map[string]bool{}, notGrouped: map[string]bool{}, emptyOnce: map[string]int{}}
	for _, t := range o.NotGrouped {
		m.notGrouped[t] = true
	}
	for _, d := range o.Closed {
		m.closed[d] = true
	}
	for _, t := range o.OTC {
		m.otc[t] = true
	}
	return m
}

// AddSplit scripts a split (see Split).
func (s *Server) AddSplit(sp Split) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.market.splits = append(s.market.splits, sp)
}

// Halt leaves ticker out of the market on the given dates: no bar in the
// per-ticker answer, no row in the grouped one (a halted or delisted day).
func (s *Server) Halt(ticker string, dates ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.market.halted[ticker] == nil {
		s.market.halted[ticker] = map[string]bool{}
	}
	for _, d := range dates {
		s.market.halted[ticker][d] = true
	}
}

// CloseSession makes the exchange closed on the given trading days of the
// rule calendar (a closure it does not know, such as a day of mourning
// announced at short notice): no bar of any ticker, an empty grouped answer.
func (s *Server) CloseSession(dates ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range dates {
		s.market.closed[d] = true
	}
}

// ServeEmpty answers the next times grouped-daily requests for the session
// date with no rows, as if it were not published, although the exchange
// traded and later answers carry it: the provider failing to serve a day it
// has.
func (s *Server) ServeEmpty(date string, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.market.emptyOnce[date] += times
}

// SetGroupedForbidden makes grouped-daily requests answer 403
// NOT_AUTHORIZED (a plan without that endpoint) until set back.
func (s *Server) SetGroupedForbidden(forbidden bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.market.groupedForbidden = forbidden
}

// LastPublished is the last session the server serves at its clock: the
// last trading day whose close plus PublishDelay has passed.
func (s *Server) LastPublished() string {
	return marketdata.LastTradingDay(s.opts.Now().Add(-s.opts.PublishDelay))
}

// lastExecuted is the last session that has closed: splits up to it have
// executed (history is re-adjusted at the split, whether or not the
// session's own bars are published yet).
func (s *Server) lastExecuted() string { return marketdata.LastTradingDay(s.opts.Now()) }

// Bars are the bars the server serves now for ticker from one date to
// another (both included) with adjusted=true, in Polygon's wire form: the
// synthetic series up to the last published session, split-adjusted as of
// now, halted and closed days left out, volumes as revised by now. Tests
// take their reference values from it.
func (s *Server) Bars(ticker, from, to string) ([]Bar, error) { return s.serve(ticker, from, to, true) }

// RawBars are the bars the server serves now for ticker with
// adjusted=false: as the market printed them.
func (s *Server) RawBars(ticker, from, to string) ([]Bar, error) {
	return s.serve(ticker, from, to, false)
}

func (s *Server) serve(ticker, from, to string, adjusted bool) ([]Bar, error) {
	if last := s.LastPublished(); to > last {
		to = last
	}
	if from > to {
		return nil, nil
	}
	series, err := Series(ticker, from, to)
	if err != nil {
		return nil, err
	}
	executed, now := s.lastExecuted(), s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Bar, 0, len(series))
	for _, b := range series {
		if s.market.halted[ticker][b.Date] || s.market.closed[b.Date] {
			continue
		}
		w := wire(s.market.price(ticker, b, executed, adjusted))
		if s.opts.RevisionDelay > 0 {
			if close, err := marketdata.SessionClose(b.Date); err == nil && now.Before(close.Add(s.opts.RevisionDelay)) {
				// Not revised yet: the preliminary volume and VWAP.
				w.V, w.VW, w.N = math.Round(w.V*PreliminaryVolume), round4(w.VW*1.001), w.N-w.N/10
			}
		}
		out = append(out, w)
	}
	return out, nil
}

// PreliminaryVolume is the share of a session's final volume the server
// reports before Options.RevisionDelay has passed since its close.
const PreliminaryVolume = 0.9

// price is bar b of ticker as served: printed, the synthetic series times
// the ratio of every split after its date (the level before them); or, with
// adjusted, the same divided by the ratio of every split that has executed
// by executed (the series itself, for the splits known then), as Polygon
// re-adjusts history when a split executes.
func (m *market) price(ticker string, b marketdata.Bar, executed string, adjusted bool) marketdata.Bar {
	f := 1.0
	for _, sp := range m.splits {
		if sp.Ticker == ticker && sp.Date > b.Date && sp.From > 0 && (!adjusted || sp.Date > executed) {
			f *= sp.To / sp.From
		}
	}
	if f == 1 {
		return b
	}
	b.Open, b.High, b.Low, b.Close = round4(b.Open*f), round4(b.High*f), round4(b.Low*f), round4(b.Close*f)
	b.Volume = round4(b.Volume / f)
	return b
}

// serveMarket answers a request no script or Handler answered.
func (s *Server) serveMarket(req Request, r *http.Request) Response {
	if r.Method != http.MethodGet {
		return notFound()
	}
	switch req.Kind {
	case KindAggregates:
		return s.aggregates(req, r)
	case KindGrouped:
		return s.grouped(req, r)
	case KindSplits:
		return s.splitsAnswer(r)
	}
	return notFound()
}

func notFound() Response {
	return JSON(http.StatusNotFound, `{"status":"NOT_FOUND","request_id":"fakepolygon-not-found","message":"Not Found"}`)
}

// adjusted reads the adjusted query parameter: true unless "false", as
// Polygon defaults it.
func adjusted(r *http.Request) bool { return r.URL.Query().Get("adjusted") != "false" }

// outsidePlan reports whether date is before the plan's history
// (Options.PlanFrom).
func (s *Server) outsidePlan(date string) bool {
	return s.opts.PlanFrom != "" && date < s.opts.PlanFrom
}

// aggregates answers a per-ticker request through the last published
// session, paginated by the limit parameter (or the cursor of a next_url)
// and Options.PageSize, printed or adjusted as asked. A symbol Polygon would
// not know (not in its normalized spelling) gets its answer for an unknown
// ticker: 200 with resultsCount 0; a range that starts before the plan's
// history, 403 (the server's choice: Polygon's documentation does not say).
func (s *Server) aggregates(req Request, r *http.Request) Response {
	from, err1 := parseWhen(req.From)
	to, err2 := parseWhen(req.To)
	if err1 != nil || err2 != nil {
		return JSON(http.StatusBadRequest, `{"status":"ERROR","request_id":"fakepolygon-bad-time","error":"Could not parse the time parameter: 'from' or 'to'. Use YYYY-MM-DD or Unix millisecond timestamps."}`)
	}
	if s.outsidePlan(from) {
		return JSON(http.StatusForbidden, BodyOutsidePlan)
	}
	adj := adjusted(r)
	var bars []Bar
	if norm, err := symbol.Normalize(req.Ticker); err == nil && norm == req.Ticker {
		s.mu.Lock()
		s.market.asked[req.Ticker] = true
		s.mu.Unlock()
		bars, _ = s.serve(req.Ticker, from, to, adj) // both dates are valid here
	}
	q := r.URL.Query()
	limit := 5000 // Polygon's default
	if c, err := base64.RawURLEncoding.DecodeString(q.Get("cursor")); err == nil {
		if cq, err := url.ParseQuery(string(c)); err == nil && cq.Get("limit") != "" {
			q.Set("limit", cq.Get("limit"))
		}
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		limit = min(n, 50000)
	}
	page := limit
	if s.opts.PageSize > 0 {
		page = min(page, s.opts.PageSize)
	}
	next := ""
	if len(bars) > page {
		cursor := base64.RawURLEncoding.EncodeToString([]byte("limit=" + strconv.Itoa(limit) + "&sort=asc&adjusted=" + strconv.FormatBool(adj)))
		next = fmt.Sprintf("%s/v2/aggs/ticker/%s/range/1/day/%d/%s?cursor=%s",
			s.URL, url.PathEscape(req.Ticker), bars[page].T, to, cursor)
		bars = bars[:page]
	}
	return JSON(http.StatusOK, string(body(req.Ticker, bars, next, adj)))
}

// GroupedRow is one row of a grouped-daily answer: T is the ticker and t the
// END of the day's window, 16:00 New York.
type GroupedRow struct {
	T  string  `json:"T"`
	V  float64 `json:"v"`
	VW float64 `json:"vw"`
	O  float64 `json:"o"`
	C  float64 `json:"c"`
	H  float64 `json:"h"`
	L  float64 `json:"l"`
	// Time is "t", Unix milliseconds.
	Time int64 `json:"t"`
	N    int64 `json:"n"`
	// OTC marks an over-the-counter ticker (include_otc=true only).
	OTC bool `json:"otc,omitempty"`
}

// GroupedBody is the JSON of an adjusted grouped-daily answer (no rows:
// resultsCount 0 and no results, as for a day not published).
func GroupedBody(rows []GroupedRow) []byte { return groupedBody(rows, true) }

func groupedBody(rows []GroupedRow, adjusted bool) []byte {
	a := struct {
		QueryCount   int          `json:"queryCount"`
		ResultsCount int          `json:"resultsCount"`
		Adjusted     bool         `json:"adjusted"`
		Results      []GroupedRow `json:"results,omitempty"`
		Status       string       `json:"status"`
		RequestID    string       `json:"request_id"`
		Count        int          `json:"count,omitempty"`
	}{QueryCount: len(rows), ResultsCount: len(rows), Adjusted: adjusted, Results: rows, Status: "OK", RequestID: "fakepolygon-grouped", Count: len(rows)}
	b, err := json.Marshal(a)
	if err != nil {
		panic("fakepolygon: " + err.Error())
	}
	return b
}

// grouped answers one day of the market: a row per ticker of the universe
// that traded that day (sorted; OTC tickers only with include_otc=true),
// printed or adjusted as asked, each with t at the session's close (16:00
// New York, 13:00 on an early close), plus the junk rows; resultsCount 0 for
// a day not published by the server's clock, not a session, closed, or served
// empty (ServeEmpty); 403 when the plan is set not to include the endpoint,
// or the date is before its history.
func (s *Server) grouped(req Request, r *http.Request) Response {
	s.mu.Lock()
	forbidden := s.market.groupedForbidden
	s.mu.Unlock()
	if forbidden {
		return JSON(http.StatusForbidden, BodyNotAuthorized)
	}
	date, err := time.Parse(marketdata.DateLayout, req.Date)
	if err != nil {
		return JSON(http.StatusBadRequest, `{"status":"ERROR","request_id":"fakepolygon-bad-date","error":"Could not parse the date parameter. Use YYYY-MM-DD."}`)
	}
	d := date.Format(marketdata.DateLayout)
	if s.outsidePlan(d) {
		return JSON(http.StatusForbidden, BodyOutsidePlan)
	}
	adj, otc := adjusted(r), r.URL.Query().Get("include_otc") == "true"
	s.mu.Lock()
	closed, empty := s.market.closed[d], s.market.emptyOnce[d] > 0
	if empty {
		s.market.emptyOnce[d]--
	}
	s.mu.Unlock()
	if !marketdata.IsTradingDay(d) || d > s.LastPublished() || closed || empty {
		return JSON(http.StatusOK, string(groupedBody(nil, adj)))
	}
	end, _ := marketdata.SessionClose(d)
	var rows []GroupedRow
	for _, t := range s.universe() {
		s.mu.Lock()
		isOTC, left := s.market.otc[t], s.market.notGrouped[t]
		s.mu.Unlock()
		if left || (isOTC && !otc) {
			continue
		}
		bars, err := s.serve(t, d, d, adj)
		if err != nil || len(bars) != 1 {
			continue // halted or closed that day
		}
		b := bars[0]
		rows = append(rows, GroupedRow{T: t, V: b.V, VW: b.VW, O: b.O, C: b.C, H: b.H, L: b.L, Time: end.UnixMilli(), N: b.N, OTC: isOTC})
	}

	if !s.opts.NoJunk {
		rows = append(rows,
			GroupedRow{T: "KIMpL", V: 1200, VW: 21.5, O: 21.4, C: 21.6, H: 21.7, L: 21.3, Time: end.UnixMilli(), N: 40},
			GroupedRow{T: "ZZDUP", V: 100, VW: 5, O: 5, C: 5, H: 5, L: 5, Time: end.UnixMilli(), N: 3},
			GroupedRow{T: "ZZDUP", V: 900, VW: 6, O: 6, C: 6, H: 6, L: 6, Time: end.UnixMilli(), N: 9},
			GroupedRow{T: "ZZZERO", V: 10, VW: 0, O: 0, C: 0, H: 0, L: 0, Time: end.UnixMilli(), N: 1},
		)
	}
	return JSON(http.StatusOK, string(groupedBody(rows, adj)))
}

// universe is every ticker the grouped answer carries, sorted.
func (s *Server) universe() []string {
	var extra []string
	if s.opts.UniverseFunc != nil {
		extra = s.opts.UniverseFunc() // outside the lock: it may be slow
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set := map[string]bool{}
	for _, list := range [][]string{s.opts.Universe, s.opts.OTC, extra} {
		for _, t := range list {
			set[t] = true
		}
	}
	for t := range s.market.asked {
		set[t] = true
	}
	var out []string
	for t := range set {
		if symbol.Valid(t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// splitEntry is one split as /v3/reference/splits lists it.
type splitEntry struct {
	ID            string  `json:"id"`
	Ticker        string  `json:"ticker"`
	ExecutionDate string  `json:"execution_date"`
	SplitFrom     float64 `json:"split_from"`
	SplitTo       float64 `json:"split_to"`
}

// splitsAnswer lists the scripted splits listed by now (Split.Listed) whose
// execution date as listed now (Split.ListedAs until Split.Corrected) is
// within execution_date.gte and execution_date.lte, by date, paginated by
// limit with a next_url carrying a cursor.
func (s *Server) splitsAnswer(r *http.Request) Response {
	q := r.URL.Query()
	if c := q.Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil {
			return JSON(http.StatusBadRequest, `{"status":"ERROR","request_id":"fakepolygon-bad-cursor","error":"bad cursor"}`)
		}
		if q, err = url.ParseQuery(string(raw)); err != nil {
			return JSON(http.StatusBadRequest, `{"status":"ERROR","request_id":"fakepolygon-bad-cursor","error":"bad cursor"}`)
		}
	}
	gte, lte := q.Get("execution_date.gte"), q.Get("execution_date.lte")
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit <= 0 {
		limit = 10 // Polygon's default
	}
	offset, _ := strconv.Atoi(q.Get("offset"))
	today := s.opts.Now().In(marketdata.NewYork()).Format(marketdata.DateLayout)
	s.mu.Lock()
	var list []splitEntry
	for i, sp := range s.market.splits {
		if sp.Listed != "" && today < sp.Listed {
			continue // not listed yet
		}
		date := sp.Date
		if sp.ListedAs != "" && (sp.Corrected == "" || today < sp.Corrected) {
			date = sp.ListedAs
		}
		id := sp.ID
		if id == "" {
			id = "E" + strconv.Itoa(i+1)
		}
		if (gte == "" || date >= gte) && (lte == "" || date <= lte) {
			list = append(list, splitEntry{ID: id, Ticker: sp.Ticker, ExecutionDate: date, SplitFrom: sp.From, SplitTo: sp.To})
			if sp.AlsoID != "" {
				list = append(list, splitEntry{ID: sp.AlsoID, Ticker: sp.Ticker, ExecutionDate: date, SplitFrom: sp.From, SplitTo: sp.To})
			}
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(list, func(a, b splitEntry) int {
		switch {
		case a.ExecutionDate < b.ExecutionDate:
			return -1
		case a.ExecutionDate > b.ExecutionDate:
			return 1
		}
		return 0
	})
	out := struct {
		Results   []splitEntry `json:"results"`
		Status    string       `json:"status"`
		RequestID string       `json:"request_id"`
		NextURL   string       `json:"next_url,omitempty"`
	}{Results: []splitEntry{}, Status: "OK", RequestID: "fakepolygon-splits"}
	if offset < len(list) {
		end := min(offset+limit, len(list))
		out.Results = list[offset:end]
		if end < len(list) {
			next := url.Values{"execution_date.gte": {gte}, "execution_date.lte": {lte}, "limit": {strconv.Itoa(limit)}, "offset": {strconv.Itoa(end)}}
			out.NextURL = s.URL + "/v3/reference/splits?cursor=" + base64.RawURLEncoding.EncodeToString([]byte(next.Encode()))
		}
	}
	b, _ := json.Marshal(out)
	return JSON(http.StatusOK, string(b))
}

func round4(x float64) float64 {
	const k = 1e4
	if x > 1e12 || x < -1e12 {
		return x
	}
	return float64(int64(x*k+0.5)) / k
}
