package fakepolygon

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
	_ "time/tzdata" // bars start at midnight New York, on any machine
)

// newYork is the zone of Polygon's daily bar starts.
var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic("fakepolygon: " + err.Error()) // embedded by time/tzdata: cannot happen
	}
	return loc
}()

// Bar is one daily aggregate as Polygon sends it.
type Bar struct {
	O  float64 `json:"o"`
	H  float64 `json:"h"`
	L  float64 `json:"l"`
	C  float64 `json:"c"`
	V  float64 `json:"v"`
	VW float64 `json:"vw"`
	// T is the bar's start in Unix milliseconds: midnight New York of its date.
	T int64 `json:"t"`
	N int64 `json:"n"`
}

// Aggregates is the body of an aggregates answer.
type Aggregates struct {
	Ticker       string `json:"ticker"`
	QueryCount   int    `json:"queryCount"`
	ResultsCount int    `json:"resultsCount"`
	Adjusted     bool   `json:"adjusted"`
	Results      []Bar  `json:"results,omitempty"`
	Status       string `json:"status"`
	RequestID    string `json:"request_id"`
	Count        int    `json:"count,omitempty"`
	NextURL      string `json:"next_url,omitempty"`
}

// Body is the JSON of an OK aggregates answer carrying bars, with next_url
// when nextURL is not empty. No bars gives resultsCount 0 and no results, as
// Polygon answers an unknown ticker.
func Body(ticker string, bars []Bar, nextURL string) []byte {
	a := Aggregates{
		Ticker: ticker, QueryCount: len(bars), ResultsCount: len(bars), Adjusted: true,
		Results: bars, Status: "OK", RequestID: "fakepolygon-" + ticker, Count: len(bars), NextURL: nextURL,
	}
	b, err := json.Marshal(a)
	if err != nil {
		panic("fakepolygon: " + err.Error()) // plain structs of finite numbers: cannot happen
	}
	return b
}

// SyntheticBars returns the bars the server serves for ticker from one date
// to another (YYYY-MM-DD, both included): one per weekday (holidays are not
// skipped), deterministic in the ticker and the date, so any page of any
// range agrees with any other. Prices swing around a per-ticker level on a
// 90-day cycle with a little daily noise; all are positive.
func SyntheticBars(ticker, from, to string) ([]Bar, error) {
	f, err := time.ParseInLocation(time.DateOnly, from, newYork)
	if err != nil {
		return nil, fmt.Errorf("from: %w", err)
	}
	t, err := time.ParseInLocation(time.DateOnly, to, newYork)
	if err != nil {
		return nil, fmt.Errorf("to: %w", err)
	}
	return syntheticBars(ticker, f, t), nil
}

func syntheticBars(ticker string, from, to time.Time) []Bar {
	var bars []Bar
	level := 20 + float64(hash(ticker)%500)
	phase := float64(hash(ticker+"/phase")%360) * math.Pi / 180
	for d := midnight(from); !d.After(to); d = d.AddDate(0, 0, 1) {
		if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		date := d.Format(time.DateOnly)
		u := func(k string) float64 { return float64(hash(ticker+"/"+date+"/"+k)%10000) / 10000 }
		day := float64(d.Unix() / 86400)
		c := level * (1 + 0.25*math.Sin(2*math.Pi*day/90+phase)) * (1 + 0.02*(u("c")-0.5))
		o := c * (1 + 0.01*(u("o")-0.5))
		h := math.Max(o, c) * (1 + 0.01*u("h"))
		l := math.Min(o, c) * (1 - 0.01*u("l"))
		v := math.Round(1e6*(1+u("v"))) + 0.5*math.Round(u("f"))
		bars = append(bars, Bar{
			O: round4(o), H: round4(h), L: round4(l), C: round4(c), V: v,
			VW: round4((h + l + c) / 3), T: d.UnixMilli(), N: int64(v / 100),
		})
	}
	return bars
}

// synthetic answers an aggregates request from SyntheticBars, paginated by
// the limit parameter (or the cursor of a next_url) and Options.PageSize.
func (s *Server) synthetic(req Request, r *http.Request) Response {
	if req.Ticker == "" || r.Method != http.MethodGet {
		return JSON(http.StatusNotFound, `{"status":"NOT_FOUND","request_id":"fakepolygon-not-found","message":"Not Found"}`)
	}
	from, err1 := parseWhen(req.From)
	to, err2 := parseWhen(req.To)
	if err1 != nil || err2 != nil {
		return JSON(http.StatusBadRequest, `{"status":"ERROR","request_id":"fakepolygon-bad-time","error":"Could not parse the time parameter: 'from' or 'to'. Use YYYY-MM-DD or Unix millisecond timestamps."}`)
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
	bars := syntheticBars(req.Ticker, from, to)
	next := ""
	if len(bars) > page {
		cursor := base64.RawURLEncoding.EncodeToString([]byte("limit=" + strconv.Itoa(limit) + "&sort=asc"))
		next = fmt.Sprintf("%s/v2/aggs/ticker/%s/range/1/day/%d/%d?cursor=%s",
			s.URL, url.PathEscape(req.Ticker), bars[page].T, to.UnixMilli(), cursor)
		bars = bars[:page]
	}
	return JSON(http.StatusOK, string(Body(req.Ticker, bars, next)))
}

// parseWhen reads a path date: YYYY-MM-DD (New York) or Unix milliseconds.
func parseWhen(s string) (time.Time, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(ms).In(newYork), nil
	}
	return time.ParseInLocation(time.DateOnly, s, newYork)
}

func midnight(t time.Time) time.Time {
	t = t.In(newYork)
	m := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, newYork)
	if m.Before(t) {
		m = m.AddDate(0, 0, 1)
	}
	return m
}

func hash(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
