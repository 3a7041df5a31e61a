// Package fakepolygon is the one local Polygon.io server of the project: it
// speaks Polygon's aggregates wire format for the client's contract tests,
// the pipeline's tests, end-to-end runs, fault injection, benchmarks — and,
// with a generated key, as the labelled sample-data source of `zsm run`
// without a Polygon key (SampleSource, SampleLabel).
//
// The server answers three endpoints: one ticker's daily bars
// (GET /v2/aggs/ticker/{T}/range/{n}/{span}/{from}/{to}), one day of the whole
// market (GET /v2/aggs/grouped/locale/us/market/stocks/{date}) and the stock
// splits of a date range (GET /v3/reference/splits). Each request is
// answered, in this order of precedence, by:
//
//  1. the rate limit (Options.RateLimit): 429 with Polygon's body beyond N
//     admitted calls in any sliding Options.Window;
//  2. the key check (Options.Key): 400 "API Key was not provided" or
//     401 "Unknown API Key", as Polygon answers;
//  3. the next response scripted for that ticker (EnqueueFor; Grouped and
//     Splits name the other two endpoints);
//  4. the next response scripted for any request (Enqueue);
//  5. for a per-ticker request, Options.Handler; then
//  6. the market the server simulates (market.go): deterministic daily bars
//     (Series) on NYSE trading days for any valid ticker, up to the last
//     session published by Options.Now (its close plus PublishDelay), as
//     printed (adjusted=false) or adjusted for the scripted splits that
//     have executed by then, without the scripted halts and closures, with
//     preliminary volumes until Options.RevisionDelay after each close; the
//     grouped answer of any past session carries the same bars for its
//     universe (Options.Universe, UniverseFunc, every ticker asked about,
//     and Options.OTC with include_otc=true) plus junk rows a client must
//     skip, its t at the session's close (13:00 on an early close), or 403
//     NOT_AUTHORIZED when the plan is set not to include it
//     (SetGroupedForbidden) or the date is before its history
//     (Options.PlanFrom); the splits endpoint lists the scripted splits as
//     they are listed at the clock (late, or with a date corrected later).
//
// Scripted responses can fail in every way the client must survive: any
// status and headers (Retry-After), a delay, a connection reset, a body cut
// short. Every request is recorded (time, method, path, query, the
// Authorization header) so a test can count attempts and check that a key
// never travelled in a URL.
//
// A benchmark of 60 tickers against the free plan's big brother looks like:
//
//	srv := fakepolygon.New(b, fakepolygon.Options{Key: "k", RateLimit: 600, Window: time.Minute})
//	// point the client at srv.URL with key "k", fetch 60 tickers, then:
//	b.ReportMetric(float64(srv.Throttled()), "429s")
package fakepolygon

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BaseURLPlaceholder in a response body is replaced with the server's URL
// before it is sent, so recorded bodies in testdata can carry a next_url that
// points back at the test server.
const BaseURLPlaceholder = "{{BASE_URL}}"

// Polygon's error bodies (facts.md), as the server sends them.
const (
	BodyMissingKey  = `{"status":"ERROR","request_id":"fakepolygon-missing-key","error":"API Key was not provided"}`
	BodyUnknownKey  = `{"status":"ERROR","request_id":"fakepolygon-unknown-key","error":"Unknown API Key"}`
	BodyRateLimited = `{"status":"ERROR","request_id":"fakepolygon-rate-limited","error":"You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue. https://polygon.io/pricing"}`
)

// Response is one scripted answer. The zero value is an empty 200.
type Response struct {
	// Status is the HTTP status; 0 means 200.
	Status int
	// Header is added to the response (for example Retry-After).
	Header http.Header
	// Body is sent as is, after BaseURLPlaceholder is replaced with the
	// server's URL.
	Body []byte
	// Delay holds the answer back this long. The wait ends early when the
	// client goes away (its timeout) or the server closes, so a long delay
	// costs a test nothing once the client has given up.
	Delay time.Duration
	// Reset closes the connection with a TCP reset instead of answering.
	Reset bool
	// TruncateAt > 0 announces the whole body's Content-Length but sends
	// only its first TruncateAt bytes, then closes the connection.
	TruncateAt int
}

// JSON is a response with the given status and JSON body.
func JSON(status int, body string) Response {
	return Response{Status: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}
}

// File is a JSON response whose body is read from path (a recorded sample in
// testdata); the test fails if it cannot be read.
func File(t testing.TB, status int, path string) Response {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("fakepolygon: read recorded body: %v", err)
	}
	return JSON(status, string(b))
}

// With returns a copy of r with header k set to v.
func (r Response) With(k, v string) Response {
	h := r.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(k, v)
	r.Header = h
	return r
}

// Request is a request as the server received it.
type Request struct {
	// Time is when the server received it (Options.Now).
	Time time.Time
	// Method, Path (unescaped), RawQuery and RequestURI as on the wire.
	Method, Path, RawQuery, RequestURI string
	// Authorization is the Authorization header ("" if absent).
	Authorization string
	// Kind is KindAggregates, KindGrouped, KindSplits or "" (another path).
	Kind string
	// Ticker, From and To are the aggregates path's parts ("" for other
	// paths); Date is the grouped path's date.
	Ticker, From, To, Date string
	// Status is the status the server chose (0 for a reset); a client that
	// gave up during a Delay never saw it. Set once the answer is chosen.
	Status int
}

// Options configure a Server. The zero value serves synthetic bars to anyone.
type Options struct {
	// Key, when set, is the only accepted API key, as "Authorization: Bearer
	// <Key>" or an apiKey query parameter (Polygon accepts both). Requests
	// without a key get Polygon's 400, with another key its 401.
	Key string
	// RateLimit > 0 admits at most RateLimit calls in any sliding Window and
	// answers the others 429 with Polygon's body. Refused calls do not count
	// toward the limit.
	RateLimit int
	// Window of the rate limit; 0 means one minute.
	Window time.Duration
	// RetryAfter makes rate-limit 429s carry Retry-After (whole seconds until
	// a call would be admitted). Polygon does not document sending it.
	RetryAfter bool
	// PageSize > 0 splits synthetic results into pages of at most PageSize
	// bars linked by next_url (as does a smaller limit query parameter).
	PageSize int
	// Handler answers per-ticker aggregates requests that have no scripted
	// response; nil serves the simulated market. It runs outside the
	// server's lock, so it may call the Server's methods (Calls, Requests,
	// ...), and concurrently. Grouped and splits requests never reach it.
	Handler func(Request) Response
	// Now is the server's clock, for recorded times, the rate limit and the
	// last published session; nil uses time.Now. Share a fake clock with the
	// client to test pacing without waiting; move it to play consecutive
	// nights.
	Now func() time.Time

	// PublishDelay is how long after a session's 16:00 New York close the
	// server starts serving it (0: at the close). A grouped request for a
	// session not yet published answers resultsCount 0, as Polygon does
	// before its end-of-day data is ready.
	PublishDelay time.Duration
	// Universe are tickers the grouped answer always carries (besides
	// UniverseFunc's and every ticker asked about per ticker).
	Universe []string
	// UniverseFunc, when set, adds tickers to the grouped answer at each
	// request (the local stack passes the symbols held in its tables).
	UniverseFunc func() []string
	// NoJunk leaves out of the grouped answer the rows a client must skip
	// (JunkTickers: a preferred share spelled KIMpL, a ticker sent twice, a
	// zero close).
	NoJunk bool
	// Splits are scripted splits (AddSplit adds more).
	Splits []Split
	// NotGrouped are tickers the grouped answer never carries (a security
	// the grouped endpoint leaves out), though they are served per ticker.
	NotGrouped []string
	// OTC are over-the-counter tickers: in the grouped answer only when it
	// is asked with include_otc=true (Polygon's default leaves them out),
	// per ticker always.
	OTC []string
	// Closed are trading days of the rule calendar on which the exchange did
	// not open (CloseSession adds more): no bars, an empty grouped answer.
	Closed []string
	// PlanFrom, when set, is the first date of the plan's history: a grouped
	// request for an earlier date, or a per-ticker range starting earlier,
	// answers 403 "Your plan doesn't include this data timeframe".
	PlanFrom string
	// RevisionDelay, when set, is how long after a session's close its
	// volume and VWAP are revised: asked earlier, the server reports the
	// preliminary ones (PreliminaryVolume of the volume).
	RevisionDelay time.Duration
}

// Server is a running local Polygon. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to configure the client with (no trailing slash).
	URL string

	opts Options
	srv  *httptest.Server
	done chan struct{}

	mu        sync.Mutex
	script    []Response
	byTicker  map[string][]Response
	requests  []Request
	admitted  []time.Time
	throttled int
	market    market
}

// New starts a server that closes when the test (or benchmark) ends.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s := Start(opts)
	t.Cleanup(s.Close)
	return s
}

// Start starts a server outside a test (a TestMain, an example, a local
// run); the caller must Close it.
func Start(opts Options) *Server {
	if opts.Window <= 0 {
		opts.Window = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, done: make(chan struct{}), byTicker: map[string][]Response{}}
	s.market = newMarket(opts)
	s.srv = httptest.NewServer(s)
	s.URL = s.srv.URL
	return s
}

// Close stops the server, ending any delayed answer. New arranges it at the
// end of the test; calling it earlier, or twice, is harmless.
func (s *Server) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Enqueue scripts the answers to the next requests, whatever their ticker,
// in order. Requests beyond the script get the default answer.
func (s *Server) Enqueue(rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, rs...)
}

// EnqueueFor scripts the answers to the next requests for ticker, in order;
// they take precedence over Enqueue's. Grouped and Splits script the
// grouped-daily and splits endpoints.
func (s *Server) EnqueueFor(ticker string, rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byTicker[ticker] = append(s.byTicker[ticker], rs...)
}

// Requests returns a copy of every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Calls is the number of requests received so far.
func (s *Server) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// Throttled is the number of 429 answers sent (by the rate limit or a script).
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// Pending is the number of scripted responses not yet used.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.script)
	for _, rs := range s.byTicker {
		n += len(rs)
	}
	return n
}

// MaxCallsIn is the largest number of requests received within any span of
// the given length (both ends included): the figure to compare with a rate.
func (s *Server) MaxCallsIn(window time.Duration) int {
	reqs := s.Requests()
	times := make([]time.Time, len(reqs))
	for i, r := range reqs {
		times[i] = r.Time
	}
	return MaxInWindow(times, window)
}

// MaxInWindow is the largest number of the ascending times that fall within
// any span of the given length (both ends included).
func MaxInWindow(times []time.Time, window time.Duration) int {
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) > window {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// ServeHTTP answers one request (the server is also an http.Handler, for
// tests that call it without a socket).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req := Request{
		Method:        r.Method,
		Path:          r.URL.Path,
		RawQuery:      r.URL.RawQuery,
		RequestURI:    r.RequestURI,
		Authorization: r.Header.Get("Authorization"),
	}
	req.Kind, req.Ticker, req.From, req.To, req.Date = parsePath(r.URL.Path)

	s.mu.Lock()
	req.Time = s.opts.Now()
	resp, scripted := s.decide(req, r)
	i := len(s.requests)
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	if !scripted {
		// Outside the lock: a Handler may call the Server's methods.
		switch {
		case req.Kind == KindAggregates && s.opts.Handler != nil:
			resp = withStatus(s.opts.Handler(req))
		default:
			resp = s.serveMarket(req, r)
		}
	}

	s.mu.Lock()
	s.requests[i].Status = resp.Status
	if resp.Reset {
		s.requests[i].Status = 0
	}
	if s.requests[i].Status == http.StatusTooManyRequests {
		s.throttled++
	}
	s.mu.Unlock()

	s.write(w, r, resp)
}

// decide applies the rate limit, the key check and the scripts, in that
// order; false means none of them answers. s.mu is held.
func (s *Server) decide(req Request, r *http.Request) (Response, bool) {
	if s.opts.RateLimit > 0 {
		cut := req.Time.Add(-s.opts.Window)
		keep := s.admitted[:0]
		for _, t := range s.admitted {
			if t.After(cut) {
				keep = append(keep, t)
			}
		}
		s.admitted = keep
		if len(s.admitted) >= s.opts.RateLimit {
			resp := JSON(http.StatusTooManyRequests, BodyRateLimited)
			if s.opts.RetryAfter {
				wait := s.admitted[0].Add(s.opts.Window).Sub(req.Time)
				resp = resp.With("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			}
			return resp, true
		}
		s.admitted = append(s.admitted, req.Time)
	}
	if s.opts.Key != "" {
		key := strings.TrimPrefix(req.Authorization, "Bearer ")
		if req.Authorization == "" {
			key = r.URL.Query().Get("apiKey")
		}
		switch {
		case key == "":
			return JSON(http.StatusBadRequest, BodyMissingKey), true
		case key != s.opts.Key:
			return JSON(http.StatusUnauthorized, BodyUnknownKey), true
		}
	}
	key := req.Ticker
	switch req.Kind {
	case KindGrouped:
		key = Grouped
	case KindSplits:
		key = Splits
	}
	if q := s.byTicker[key]; key != "" && len(q) > 0 {
		s.byTicker[key] = q[1:]
		return withStatus(q[0]), true
	}
	if len(s.script) > 0 {
		resp := s.script[0]
		s.script = s.script[1:]
		return withStatus(resp), true
	}
	return Response{}, false
}

func withStatus(r Response) Response {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	return r
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, resp Response) {
	if resp.Delay > 0 {
		t := time.NewTimer(resp.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
	body := bytes.ReplaceAll(resp.Body, []byte(BaseURLPlaceholder), []byte(s.URL))
	if resp.Reset || resp.TruncateAt > 0 {
		s.hijack(w, resp, body)
		return
	}
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.Status)
	_, _ = w.Write(body)
}

// hijack takes the raw connection to misbehave in ways net/http will not:
// a reset, or a body shorter than its Content-Length.
func (s *Server) hijack(w http.ResponseWriter, resp Response, body []byte) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "fakepolygon: cannot hijack: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer conn.Close()
	if resp.Reset {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST, not FIN
		}
		return
	}
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", resp.Status, http.StatusText(resp.Status))
	_ = resp.Header.Write(buf)
	fmt.Fprintf(buf, "Content-Length: %d\r\nConnection: close\r\n\r\n", len(body))
	_, _ = buf.Write(body[:min(resp.TruncateAt, len(body))])
	_ = buf.Flush()
}

// The kinds of request the server tells apart (Request.Kind).
const (
	KindAggregates = "aggregates"
	KindGrouped    = "grouped"
	KindSplits     = "splits"
)

// Grouped and Splits are the EnqueueFor keys of the grouped-daily and splits
// endpoints (not valid tickers, so they cannot collide with one).
const (
	Grouped = "#grouped"
	Splits  = "#splits"
)

// parsePath tells the endpoints apart:
// /v2/aggs/ticker/{T}/range/{n}/{span}/{from}/{to},
// /v2/aggs/grouped/locale/us/market/stocks/{date} and /v3/reference/splits.
func parsePath(p string) (kind, ticker, from, to, date string) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	switch {
	case len(parts) == 9 && parts[0] == "v2" && parts[1] == "aggs" && parts[2] == "ticker" && parts[4] == "range":
		return KindAggregates, parts[3], parts[7], parts[8], ""
	case len(parts) == 8 && parts[0] == "v2" && parts[1] == "aggs" && parts[2] == "grouped" && parts[3] == "locale" &&
		parts[4] == "us" && parts[5] == "market" && parts[6] == "stocks":
		return KindGrouped, "", "", "", parts[7]
	case len(parts) == 3 && parts[0] == "v3" && parts[1] == "reference" && parts[2] == "splits":
		return KindSplits, "", "", "", ""
	}
	return "", "", "", "", ""
}
