package polygon_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/logging"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/metrics"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/retry"
)

// testKey is the key every test client sends and the server demands. It
// must never show in a URL, a log line or an error.
const testKey = "pk_test_5ecr3tK3y_do_not_log"

// harness is a client wired to a local Polygon that demands testKey, with
// its logs, metrics and retry waits captured, and no real sleeping.
type harness struct {
	srv  *fakepolygon.Server
	c    *polygon.Client
	logs *syncBuffer
	rec  *metrics.Recorder

	mu    sync.Mutex
	waits []time.Duration
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// meteredClient is the client as the wiring builds it: the default one,
// counted by the metrics decorator.
func meteredClient(rec *metrics.Recorder) *http.Client {
	hc := polygon.NewHTTPClient()
	hc.Transport = rec.Transport(hc.Transport, deploy.MarketDataCalls, deploy.MarketDataThrottled)
	return hc
}

func newHarness(t *testing.T, so fakepolygon.Options, edit func(*polygon.Options)) *harness {
	t.Helper()
	if so.Key == "" {
		so.Key = testKey
	}
	h := &harness{srv: fakepolygon.New(t, so), logs: &syncBuffer{}}
	h.rec = metrics.New(&bytes.Buffer{}, "test")
	o := polygon.Options{
		BaseURL:        h.srv.URL,
		APIKey:         polygon.StaticKey(testKey),
		AttemptTimeout: 5 * time.Second,
		HTTPClient:     meteredClient(h.rec),
		Logger:         logging.New(h.logs, slog.LevelDebug),
		Retry: retry.Policy{Attempts: 4, Base: time.Second, Cap: 20 * time.Second, MaxRetryAfter: time.Minute,
			Rand: func() float64 { return 0.5 }, Sleep: h.sleep},
	}
	if edit != nil {
		edit(&o)
	}
	c, err := polygon.New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	return h
}

// sleep records a retry wait instead of sleeping.
func (h *harness) sleep(_ context.Context, d time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.waits = append(h.waits, d)
	return nil
}

func (h *harness) recordedWaits() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.waits...)
}

// checkNoLeak fails if the key appears in any URL the server received, in
// the logs or in err, or if a request did not carry it as a bearer token.
func (h *harness) checkNoLeak(t *testing.T, err error) {
	t.Helper()
	for i, r := range h.srv.Requests() {
		if strings.Contains(r.RequestURI, testKey) || strings.Contains(strings.ToLower(r.RawQuery), "apikey") {
			t.Errorf("request %d URL carries the key: %s", i, r.RequestURI)
		}
		if r.Authorization != "Bearer "+testKey {
			t.Errorf("request %d Authorization %q, want the bearer key", i, r.Authorization)
		}
		if r.Method != http.MethodGet {
			t.Errorf("request %d method %s", i, r.Method)
		}
	}
	if strings.Contains(h.logs.String(), testKey) {
		t.Errorf("the key is in the logs:\n%s", h.logs.String())
	}
	if err != nil && strings.Contains(err.Error(), testKey) {
		t.Errorf("the key is in the error: %v", err)
	}
}

func recorded(t *testing.T, status int, name string) fakepolygon.Response {
	t.Helper()
	return fakepolygon.File(t, status, filepath.Join("testdata", name))
}

// Reference values: the dates and closes written in testdata/responses.
var (
	okDates    = []string{"2025-01-02", "2025-01-03", "2025-01-06", "2025-01-07", "2025-01-08"}
	okCloses   = []float64{243.85, 243.36, 245, 242.21, 242.7}
	pageDates  = []string{"2025-01-02", "2025-01-03", "2025-01-06", "2025-01-07", "2025-01-08", "2025-01-10"}
	pageCloses = []float64{243.85, 243.36, 245, 242.21, 242.7, 236.85}
)

func TestContract(t *testing.T) {
	ok := func(t *testing.T) fakepolygon.Response { return recorded(t, 200, "responses/ok.json") }
	type check struct {
		permanent bool
		sentinel  error    // errors.Is target, nil for none
		text      []string // in the error message
	}
	tests := []struct {
		name       string
		ticker     string // "" means AAPL
		script     func(t *testing.T) []fakepolygon.Response
		wantCalls  int
		wantErr    *check // nil: success
		wantDates  []string
		wantCloses []float64
		wantWaits  []time.Duration  // retry waits, when they matter
		waitWithin [2]time.Duration // the one retry wait's bounds, when not exact
		timeouts   bool             // the case is about timeouts: 100 ms attempts
		throttled  float64
	}{
		{name: "success",
			script:    func(t *testing.T) []fakepolygon.Response { return []fakepolygon.Response{ok(t)} },
			wantCalls: 1, wantDates: okDates, wantCloses: okCloses},
		{name: "next_url paging merges the pages",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 200, "responses/page1.json"), recorded(t, 200, "responses/page2.json")}
			},
			wantCalls: 2, wantDates: pageDates, wantCloses: pageCloses},
		{name: "results null", ticker: "zzzz",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 200, "responses/results_null.json")}
			},
			wantCalls: 1, wantErr: &check{true, polygon.ErrNoData, []string{"resultsCount 0"}}},
		{name: "resultsCount 0 without results", ticker: "zzzz",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 200, "responses/results_count_zero.json")}
			},
			wantCalls: 1, wantErr: &check{true, polygon.ErrNoData, []string{"resultsCount 0"}}},
		{name: "DELAYED is data",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 200, "responses/delayed.json")}
			},
			wantCalls: 1, wantDates: okDates[:2], wantCloses: okCloses[:2]},
		{name: "400 missing key",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 400, "errors/400_missing_key.json"), ok(t)}
			},
			wantCalls: 1, wantErr: &check{true, polygon.ErrUnauthorized, []string{"HTTP 400", "API Key was not provided"}}},
		{name: "400 bad parameter is permanent but not a key problem",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 400, "errors/400_bad_request.json"), ok(t)}
			},
			wantCalls: 1, wantErr: &check{true, nil, []string{"HTTP 400", "Could not parse the time parameter"}}},
		{name: "401 unknown key",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 401, "errors/401_unknown_key.json"), ok(t)}
			},
			wantCalls: 1, wantErr: &check{true, polygon.ErrUnauthorized, []string{"HTTP 401", "Unknown API Key"}}},
		{name: "403 NOT_AUTHORIZED text from message",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 403, "errors/403_not_authorized.json"), ok(t)}
			},
			wantCalls: 1, wantErr: &check{true, polygon.ErrUnauthorized, []string{"HTTP 403", "NOT_AUTHORIZED", "You are not entitled to this data"}}},
		{name: "404 other 4xx permanent",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 404, "errors/404_not_found.json"), ok(t)}
			},
			wantCalls: 1, wantErr: &check{true, nil, []string{"HTTP 404", "Not Found"}}},
		{name: "429 without Retry-After backs off then succeeds",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 429, "errors/429_rate_limited.json"), ok(t)}
			},
			wantCalls: 2, wantDates: okDates, wantCloses: okCloses,
			wantWaits: []time.Duration{500 * time.Millisecond}, throttled: 1}, // full jitter: 0.5 × min(20 s, 1 s·2⁰)
		{name: "429 with Retry-After seconds is honoured",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 429, "errors/429_rate_limited.json").With("Retry-After", "7"), ok(t)}
			},
			wantCalls: 2, wantDates: okDates, wantCloses: okCloses,
			wantWaits: []time.Duration{7 * time.Second}, throttled: 1},
		{name: "429 with Retry-After beyond the cap waits the cap",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 429, "errors/429_rate_limited.json").With("Retry-After", "3600"), ok(t)}
			},
			wantCalls: 2, wantDates: okDates, wantCloses: okCloses,
			wantWaits: []time.Duration{time.Minute}, throttled: 1},
		{name: "429 every time gives up transient after 4 attempts",
			script: func(t *testing.T) []fakepolygon.Response {
				r := recorded(t, 429, "errors/429_rate_limited.json")
				return []fakepolygon.Response{r, r, r, r, ok(t)}
			},
			wantCalls: 4, throttled: 4,
			wantErr:   &check{false, polygon.ErrRateLimited, []string{"HTTP 429", "exceeded the maximum requests per minute", "4 attempts"}},
			wantWaits: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}}, // 0.5 × 1 s, 2 s, 4 s
		{name: "500 502 503 then success",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{recorded(t, 500, "errors/500_internal.json"), recorded(t, 502, "errors/502_bad_gateway.html"),
					recorded(t, 503, "errors/503_unavailable.json"), ok(t)}
			},
			wantCalls: 4, wantDates: okDates, wantCloses: okCloses,
			wantWaits: []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}},
		{name: "5xx every time gives up transient",
			script: func(t *testing.T) []fakepolygon.Response {
				r := recorded(t, 502, "errors/502_bad_gateway.html")
				return []fakepolygon.Response{r, r, r, r}
			},
			wantCalls: 4, wantErr: &check{false, nil, []string{"HTTP 502", "502 Bad Gateway"}}},
		{name: "503 with Retry-After as an HTTP date",
			script: func(t *testing.T) []fakepolygon.Response {
				at := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
				return []fakepolygon.Response{recorded(t, 503, "errors/503_unavailable.json").With("Retry-After", at), ok(t)}
			},
			wantCalls: 2, wantDates: okDates, wantCloses: okCloses,
			waitWithin: [2]time.Duration{28 * time.Second, 30 * time.Second}}, // the date has whole seconds
		{name: "timeout then success", timeouts: true,
			script: func(t *testing.T) []fakepolygon.Response {
				slow := ok(t)
				slow.Delay = time.Minute
				return []fakepolygon.Response{slow, ok(t)}
			},
			wantCalls: 2, wantDates: okDates, wantCloses: okCloses},
		{name: "timeout every time gives up transient", timeouts: true,
			script: func(t *testing.T) []fakepolygon.Response {
				slow := ok(t)
				slow.Delay = time.Minute
				return []fakepolygon.Response{slow, slow, slow, slow}
			},
			wantCalls: 4, wantErr: &check{false, nil, []string{"timed out after"}}},
		{name: "connection reset then success",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{{Reset: true}, ok(t)}
			},
			wantCalls: 2, wantDates: okDates, wantCloses: okCloses},
		{name: "connection reset every time gives up transient",
			script: func(t *testing.T) []fakepolygon.Response {
				r := fakepolygon.Response{Reset: true}
				return []fakepolygon.Response{r, r, r, r}
			},
			wantCalls: 4, wantErr: &check{false, nil, []string{"request"}}},
		{name: "truncated body then success",
			script: func(t *testing.T) []fakepolygon.Response {
				cut := ok(t)
				cut.TruncateAt = 100
				return []fakepolygon.Response{cut, ok(t)}
			},
			wantCalls: 2, wantDates: okDates, wantCloses: okCloses},
		{name: "truncated body every time gives up transient",
			script: func(t *testing.T) []fakepolygon.Response {
				cut := ok(t)
				cut.TruncateAt = 100
				return []fakepolygon.Response{cut, cut, cut, cut}
			},
			wantCalls: 4, wantErr: &check{false, nil, []string{"read HTTP 200 body", "unexpected EOF"}}},
		{name: "200 with a body that is not JSON is transient",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{fakepolygon.JSON(200, "<html>upstream hiccup</html>"), ok(t)}
			},
			wantCalls: 2, wantDates: okDates, wantCloses: okCloses},
		{name: "an answer for another ticker is permanent",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{fakepolygon.JSON(200, string(fakepolygon.Body("MSFT", []fakepolygon.Bar{{O: 1, H: 1, L: 1, C: 1, V: 1, T: 1735794000000}}, "")))}
			},
			wantCalls: 1, wantErr: &check{true, nil, []string{`answer is for ticker "MSFT"`}}},
		{name: "a body over the cap is permanent",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{fakepolygon.JSON(200, `{"ticker":"AAPL","x":"`+strings.Repeat("a", polygon.MaxBodyBytes)+`"}`)}
			},
			wantCalls: 1, wantErr: &check{true, nil, []string{"larger than"}}},
		{name: "a redirect is not followed",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{fakepolygon.JSON(302, `{}`).With("Location", "http://127.0.0.1:1/elsewhere")}
			},
			wantCalls: 1, wantErr: &check{true, nil, []string{"HTTP 302"}}},
		{name: "an error body that echoes the key is redacted and kept on one line",
			script: func(t *testing.T) []fakepolygon.Response {
				return []fakepolygon.Response{fakepolygon.JSON(401, `{"status":"ERROR","error":"Unknown API Key `+testKey+`\nsecond line"}`)}
			},
			wantCalls: 1, wantErr: &check{true, polygon.ErrUnauthorized, []string{"Unknown API Key [REDACTED] second line"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, fakepolygon.Options{}, func(o *polygon.Options) {
				if tt.timeouts {
					o.AttemptTimeout = 100 * time.Millisecond
				}
			})
			h.srv.Enqueue(tt.script(t)...)
			ticker := "aapl"
			if tt.ticker != "" {
				ticker = tt.ticker
			}
			bars, err := h.c.DailyBars(context.Background(), ticker, "2025-01-01", "2025-01-10")
			h.checkNoLeak(t, err)

			if got := h.srv.Calls(); got != tt.wantCalls || h.c.Calls() != int64(tt.wantCalls) {
				t.Errorf("attempts: server saw %d, client counted %d; want %d", got, h.c.Calls(), tt.wantCalls)
			}
			snap := h.rec.Snapshot()
			if snap[deploy.MarketDataCalls.Name] != float64(tt.wantCalls) || snap[deploy.MarketDataThrottled.Name] != tt.throttled {
				t.Errorf("metrics %v, want %d calls and %v throttled", snap, tt.wantCalls, tt.throttled)
			}
			if tt.wantWaits != nil && !equalDurations(h.recordedWaits(), tt.wantWaits) {
				t.Errorf("retry waits %v, want %v", h.recordedWaits(), tt.wantWaits)
			}
			if w := tt.waitWithin; w[1] > 0 {
				if got := h.recordedWaits(); len(got) != 1 || got[0] < w[0] || got[0] > w[1] {
					t.Errorf("retry waits %v, want one within %v", got, w)
				}
			}
			if !strings.Contains(h.logs.String(), `"msg":"polygon: `) {
				t.Errorf("nothing logged: the leak check would prove nothing")
			}
			t.Logf("error: %v", err)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("DailyBars: %v", err)
				}
				checkBars(t, bars, tt.wantDates, tt.wantCloses)
				return
			}
			if err == nil {
				t.Fatalf("DailyBars succeeded with %d bars, want an error", len(bars))
			}
			if retry.IsPermanent(err) != tt.wantErr.permanent {
				t.Errorf("permanent = %v, want %v: %v", retry.IsPermanent(err), tt.wantErr.permanent, err)
			}
			for _, s := range []error{polygon.ErrUnauthorized, polygon.ErrNoData, polygon.ErrRateLimited} {
				if errors.Is(err, s) != (s == tt.wantErr.sentinel) {
					t.Errorf("errors.Is(err, %v) = %v: %v", s, errors.Is(err, s), err)
				}
			}
			msg := err.Error()
			for _, s := range append(tt.wantErr.text, strings.ToUpper(ticker)+" 2025-01-01..2025-01-10") {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not say %q", msg, s)
				}
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error is not one line: %q", msg)
			}
		})
	}
}

func TestRequestShape(t *testing.T) {
	h := newHarness(t, fakepolygon.Options{}, nil)
	if _, err := h.c.DailyBars(context.Background(), " brk.b ", "2024-10-01", "2025-11-28"); err != nil {
		t.Fatal(err)
	}
	r := h.srv.Requests()[0]
	want := "/v2/aggs/ticker/BRK.B/range/1/day/2024-10-01/2025-11-28?adjusted=false&sort=asc&limit=50000"
	if r.RequestURI != want {
		t.Errorf("request %s, want %s", r.RequestURI, want)
	}
	h.checkNoLeak(t, nil)
}

func TestNextURLIsFollowedWithoutItsAPIKey(t *testing.T) {
	h := newHarness(t, fakepolygon.Options{}, nil)
	h.srv.Enqueue(recorded(t, 200, "responses/page1.json"), recorded(t, 200, "responses/page2.json"))
	if _, err := h.c.DailyBars(context.Background(), "AAPL", "2025-01-01", "2025-01-10"); err != nil {
		t.Fatal(err)
	}
	reqs := h.srv.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	// testdata/responses/page1.json's next_url, less its apiKey parameter.
	want := "/v2/aggs/ticker/AAPL/range/1/day/1736226000000/1736485200000?cursor=bGltaXQ9MyZzb3J0PWFzYw"
	if reqs[1].RequestURI != want {
		t.Errorf("second request %s, want %s", reqs[1].RequestURI, want)
	}
	if strings.Contains(h.logs.String(), "cursor=") {
		t.Errorf("a next_url was logged:\n%s", h.logs.String())
	}
	h.checkNoLeak(t, nil)
}

func TestSyntheticPagesAreMergedInOrder(t *testing.T) {
	h := newHarness(t, fakepolygon.Options{PageSize: 40}, nil)
	bars, err := h.c.DailyBars(context.Background(), "MSFT", "2024-10-01", "2025-11-28")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fakepolygon.SyntheticBars("MSFT", "2024-10-01", "2025-11-28")
	if len(bars) != len(want) || h.srv.Calls() != (len(want)+39)/40 {
		t.Fatalf("%d bars in %d calls, want %d in %d", len(bars), h.srv.Calls(), len(want), (len(want)+39)/40)
	}
	for i, b := range bars {
		if b.Close != want[i].C || b.Start.UnixMilli() != want[i].T || b.Date != marketdata.TradingDate(want[i].T) {
			t.Fatalf("bar %d %+v, want %+v", i, b, want[i])
		}
	}
	h.checkNoLeak(t, nil)
}

func TestPagesAreBounded(t *testing.T) {
	h := newHarness(t, fakepolygon.Options{PageSize: 1}, func(o *polygon.Options) { o.MaxPages = 3 })
	_, err := h.c.DailyBars(context.Background(), "MSFT", "2025-01-01", "2025-01-31")
	if err == nil || !retry.IsPermanent(err) || !strings.Contains(err.Error(), "more than 3 pages") || h.srv.Calls() != 3 {
		t.Fatalf("err %v after %d calls; want a permanent page-bound error after 3", err, h.srv.Calls())
	}
}

func TestNextURLToAnotherHostIsNotFollowed(t *testing.T) {
	other := fakepolygon.New(t, fakepolygon.Options{})
	h := newHarness(t, fakepolygon.Options{}, nil)
	body := fakepolygon.Body("AAPL", []fakepolygon.Bar{{O: 1, H: 1, L: 1, C: 1, V: 1, T: 1735794000000}},
		other.URL+"/v2/aggs/ticker/AAPL/range/1/day/1735880400000/1736485200000?cursor=x")
	h.srv.Enqueue(fakepolygon.JSON(200, string(body)))
	_, err := h.c.DailyBars(context.Background(), "AAPL", "2025-01-01", "2025-01-10")
	if err == nil || !retry.IsPermanent(err) || !strings.Contains(err.Error(), "not followed") {
		t.Fatalf("err %v, want a permanent refusal", err)
	}
	if other.Calls() != 0 || h.srv.Calls() != 1 {
		t.Fatalf("other host saw %d calls, ours %d", other.Calls(), h.srv.Calls())
	}
	h.checkNoLeak(t, err)
}

func TestWrongKeyAtTheServer(t *testing.T) {
	// The server's own key check (not a script): a client with another key.
	h := newHarness(t, fakepolygon.Options{Key: "some-other-key"}, nil)
	_, err := h.c.DailyBars(context.Background(), "AAPL", "2025-01-01", "2025-01-10")
	if !errors.Is(err, polygon.ErrUnauthorized) || !retry.IsPermanent(err) || h.srv.Calls() != 1 {
		t.Fatalf("err %v after %d calls; want permanent ErrUnauthorized after 1", err, h.srv.Calls())
	}
	if strings.Contains(h.logs.String(), testKey) || strings.Contains(err.Error(), testKey) {
		t.Fatal("key leaked")
	}
}

func TestBadInputMakesNoCall(t *testing.T) {
	tests := []struct {
		name, ticker, from, to string
		key                    func(context.Context) (string, error)
		sentinel               error
	}{
		{"invalid symbol", "AAPL;DROP", "2025-01-01", "2025-01-10", nil, nil},
		{"path traversal", "../../v1", "2025-01-01", "2025-01-10", nil, nil},
		{"bad date", "AAPL", "2025-13-01", "2025-01-10", nil, nil},
		{"reversed range", "AAPL", "2025-02-01", "2025-01-10", nil, nil},
		{"no key", "AAPL", "2025-01-01", "2025-01-10", polygon.StaticKey(""), polygon.ErrUnauthorized},
		{"key with a newline", "AAPL", "2025-01-01", "2025-01-10", polygon.StaticKey("pk_abc\nX-Evil: 1"), polygon.ErrUnauthorized},
		{"key source fails permanently", "AAPL", "2025-01-01", "2025-01-10",
			func(context.Context) (string, error) { return "", retry.Permanent(errors.New("secret is not JSON")) }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, fakepolygon.Options{}, func(o *polygon.Options) {
				if tt.key != nil {
					o.APIKey = tt.key
				}
			})
			_, err := h.c.DailyBars(context.Background(), tt.ticker, tt.from, tt.to)
			if err == nil || !retry.IsPermanent(err) || h.srv.Calls() != 0 {
				t.Fatalf("err %v after %d calls; want a permanent error and no call", err, h.srv.Calls())
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("err %v, want %v", err, tt.sentinel)
			}
		})
	}
}

func TestKeySourceFailureIsTransientAndPassedOn(t *testing.T) {
	boom := errors.New("secrets manager unreachable")
	h := newHarness(t, fakepolygon.Options{}, func(o *polygon.Options) {
		o.APIKey = func(context.Context) (string, error) { return "", boom }
	})
	_, err := h.c.DailyBars(context.Background(), "AAPL", "2025-01-01", "2025-01-10")
	if !errors.Is(err, boom) || retry.IsPermanent(err) || h.srv.Calls() != 0 {
		t.Fatalf("err %v after %d calls", err, h.srv.Calls())
	}
}

func TestRetryNeverSleepsPastTheDeadline(t *testing.T) {
	h := newHarness(t, fakepolygon.Options{}, nil)
	h.srv.Enqueue(recorded(t, 429, "errors/429_rate_limited.json").With("Retry-After", "30"), recorded(t, 200, "responses/ok.json"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := h.c.DailyBars(ctx, "AAPL", "2025-01-01", "2025-01-10")
	if !errors.Is(err, retry.ErrDeadline) || !errors.Is(err, polygon.ErrRateLimited) || retry.IsPermanent(err) {
		t.Fatalf("err %v, want transient ErrRateLimited stopped by the deadline", err)
	}
	if h.srv.Calls() != 1 || len(h.recordedWaits()) != 0 {
		t.Fatalf("%d calls, waits %v; want 1 call and no wait", h.srv.Calls(), h.recordedWaits())
	}
	h.checkNoLeak(t, err)
}

func TestAttemptTimeoutIsCappedByTheDeadline(t *testing.T) {
	// A 30 s attempt timeout inside a 200 ms deadline: the call ends with the
	// context, not 30 s later, and the error is not permanent.
	h := newHarness(t, fakepolygon.Options{}, func(o *polygon.Options) { o.AttemptTimeout = 30 * time.Second })
	slow := recorded(t, 200, "responses/ok.json")
	slow.Delay = time.Minute
	h.srv.Enqueue(slow)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := h.c.DailyBars(ctx, "AAPL", "2025-01-01", "2025-01-10")
	if !errors.Is(err, context.DeadlineExceeded) || retry.IsPermanent(err) || h.srv.Calls() != 1 {
		t.Fatalf("err %v after %d calls; want the context's deadline after 1 call", err, h.srv.Calls())
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, base := range []string{"ftp://x", "api.polygon.io", "https://user:pw@api.polygon.io", "https://api.polygon.io?apiKey=x"} {
		if _, err := polygon.New(polygon.Options{BaseURL: base, APIKey: polygon.StaticKey("k")}); err == nil {
			t.Errorf("base %q accepted", base)
		} else if strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "apiKey") {
			t.Errorf("error %q echoes a secret-looking part of the URL", err)
		}
	}
	if _, err := polygon.New(polygon.Options{}); err == nil {
		t.Error("no key source accepted")
	}
	c, err := polygon.New(polygon.Options{APIKey: polygon.StaticKey("k")})
	if err != nil || c.Calls() != 0 {
		t.Fatalf("defaults: %v", err)
	}
}

func checkBars(t *testing.T, bars []marketdata.Bar, dates []string, closes []float64) {
	t.Helper()
	if len(bars) != len(dates) {
		t.Fatalf("%d bars, want %d", len(bars), len(dates))
	}
	for i, b := range bars {
		if b.Date != dates[i] || b.Close != closes[i] {
			t.Errorf("bar %d: %s %v, want %s %v", i, b.Date, b.Close, dates[i], closes[i])
		}
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A bar whose prices no market printed (finite and positive, but 1e200:
// DynamoDB could not even store it) is left out of the ticker's series and
// logged; the other bars are returned as sent.
func TestDailyBarsSkipsBarsOutsideTheSaneRange(t *testing.T) {
	h := newHarness(t, fakepolygon.Options{}, nil)
	// 2025-01-02, -03 and -06, 05:00Z: midnight New York.
	body := fakepolygon.Body("AAPL", []fakepolygon.Bar{
		{O: 240, H: 242, L: 239, C: 241, V: 4e7, T: 1735794000000},
		{O: 1e200, H: 1e200, L: 1e200, C: 1e200, V: 1, T: 1735880400000},
		{O: 241, H: 245, L: 240, C: 244.5, V: 3.9e7, T: 1736139600000},
	}, "")
	h.srv.Enqueue(fakepolygon.JSON(200, string(body)))
	bars, err := h.c.DailyBars(context.Background(), "AAPL", "2025-01-01", "2025-01-10")
	if err != nil {
		t.Fatal(err)
	}
	if len(bars) != 2 || bars[0].Date != "2025-01-02" || bars[0].Close != 241 || bars[1].Date != "2025-01-06" || bars[1].Close != 244.5 {
		t.Fatalf("bars %+v, want those of 2025-01-02 and 2025-01-06", bars)
	}
	if !strings.Contains(h.logs.String(), "bars skipped") || !strings.Contains(h.logs.String(), "2025-01-03: open 1e+200 is outside the sane range") {
		t.Errorf("logs:\n%s", h.logs.String())
	}
}
