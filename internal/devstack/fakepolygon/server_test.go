package fakepolygon_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
)

// get fetches path from srv with an optional bearer key, on a fresh
// connection each time so one scripted fault cannot leak into the next call.
func get(t *testing.T, srv *fakepolygon.Server, path, key string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

func decode(t *testing.T, body []byte) fakepolygon.Aggregates {
	t.Helper()
	var a fakepolygon.Aggregates
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return a
}

func TestSyntheticBarsStartAtNewYorkMidnight(t *testing.T) {
	// 2025-03-03 is a Monday; 2025-03-09 a Sunday, the day US clocks go forward;
	// no NYSE holiday falls in the range.
	bars, err := fakepolygon.SyntheticBars("AAPL", "2025-03-01", "2025-03-11")
	if err != nil {
		t.Fatal(err)
	}
	// Reference values: midnight EST (UTC-5) before the switch, EDT (UTC-4) after.
	want := []string{"2025-03-03T05:00:00Z", "2025-03-04T05:00:00Z", "2025-03-05T05:00:00Z",
		"2025-03-06T05:00:00Z", "2025-03-07T05:00:00Z", "2025-03-10T04:00:00Z", "2025-03-11T04:00:00Z"}
	if len(bars) != len(want) {
		t.Fatalf("%d bars, want %d", len(bars), len(want))
	}
	for i, b := range bars {
		if got := time.UnixMilli(b.T).UTC().Format(time.RFC3339); got != want[i] {
			t.Errorf("bar %d starts %s, want %s", i, got, want[i])
		}
		if !(b.L > 0 && b.L <= min(b.O, b.C) && b.H >= max(b.O, b.C) && b.V > 0) {
			t.Errorf("bar %d is not a consistent OHLCV bar: %+v", i, b)
		}
	}
	again, _ := fakepolygon.SyntheticBars("AAPL", "2025-03-05", "2025-03-05")
	if len(again) != 1 || again[0] != bars[2] {
		t.Errorf("bars depend on the range asked: %+v vs %+v", again, bars[2])
	}
	other, _ := fakepolygon.SyntheticBars("MSFT", "2025-03-05", "2025-03-05")
	if other[0].C == bars[2].C {
		t.Errorf("two tickers share a close: %v", other[0].C)
	}
}

func TestSyntheticPagingFollowsNextURL(t *testing.T) {
	srv := fakepolygon.New(t, fakepolygon.Options{PageSize: 100})
	want, _ := fakepolygon.SyntheticBars("BRK.B", "2024-01-01", "2025-06-30")
	var got []fakepolygon.Bar
	path := "/v2/aggs/ticker/BRK.B/range/1/day/2024-01-01/2025-06-30?adjusted=true&sort=asc&limit=50000"
	pages := 0
	for path != "" {
		resp, body, err := get(t, srv, path, "")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("page %d: %v %v", pages, resp, err)
		}
		a := decode(t, body)
		got = append(got, a.Results...)
		pages++
		path = strings.TrimPrefix(a.NextURL, srv.URL)
		if a.NextURL != "" && path == a.NextURL {
			t.Fatalf("next_url %q is not on the server", a.NextURL)
		}
	}
	if pages != (len(want)+99)/100 || len(got) != len(want) {
		t.Fatalf("%d pages, %d bars; want %d pages, %d bars", pages, len(got), (len(want)+99)/100, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("bar %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestKeyCheckAnswersLikePolygon(t *testing.T) {
	srv := fakepolygon.New(t, fakepolygon.Options{Key: "secret-key"})
	path := "/v2/aggs/ticker/AAPL/range/1/day/2025-01-01/2025-01-10"
	for _, tc := range []struct {
		key    string
		status int
		text   string
	}{{"", 400, "API Key was not provided"}, {"wrong", 401, "Unknown API Key"}, {"secret-key", 200, `"ticker":"AAPL"`}} {
		resp, body, err := get(t, srv, path, tc.key)
		if err != nil || resp.StatusCode != tc.status || !strings.Contains(string(body), tc.text) {
			t.Errorf("key %q: %v %s %v; want %d with %q", tc.key, resp.Status, body, err, tc.status, tc.text)
		}
	}
	reqs := srv.Requests()
	if len(reqs) != 3 || reqs[2].Authorization != "Bearer secret-key" || reqs[2].Ticker != "AAPL" || reqs[2].From != "2025-01-01" {
		t.Fatalf("recorded %+v", reqs)
	}
}

func TestScriptsTakePrecedenceInOrder(t *testing.T) {
	srv := fakepolygon.New(t, fakepolygon.Options{})
	srv.Enqueue(fakepolygon.JSON(503, `{"status":"ERROR"}`).With("Retry-After", "7"), fakepolygon.JSON(500, `{}`))
	srv.EnqueueFor("MSFT", fakepolygon.JSON(403, `{"status":"NOT_AUTHORIZED","message":"no"}`))
	path := func(tk string) string { return "/v2/aggs/ticker/" + tk + "/range/1/day/2025-01-01/2025-01-10" }

	resp, _, _ := get(t, srv, path("MSFT"), "")
	if resp.StatusCode != 403 {
		t.Errorf("MSFT first: %d, want its own script's 403", resp.StatusCode)
	}
	resp, _, _ = get(t, srv, path("AAPL"), "")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("AAPL first: %d Retry-After %q, want 503 with 7", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, _, _ = get(t, srv, path("MSFT"), "")
	if resp.StatusCode != 500 {
		t.Errorf("MSFT second: %d, want the shared script's 500", resp.StatusCode)
	}
	resp, body, _ := get(t, srv, path("MSFT"), "")
	if resp.StatusCode != 200 || decode(t, body).ResultsCount != 6 {
		// 2025-01-02..03, 06..08, 10: 2025-01-01 was New Year's Day and
		// 2025-01-09 the National Day of Mourning, both NYSE holidays.
		t.Errorf("after the scripts: %d %s, want 6 synthetic bars", resp.StatusCode, body)
	}
	if srv.Calls() != 4 || srv.Pending() != 0 {
		t.Errorf("calls %d pending %d", srv.Calls(), srv.Pending())
	}
}

func TestFaults(t *testing.T) {
	srv := fakepolygon.New(t, fakepolygon.Options{})
	path := "/v2/aggs/ticker/AAPL/range/1/day/2025-01-01/2025-01-10"

	srv.Enqueue(fakepolygon.Response{Reset: true})
	if _, _, err := get(t, srv, path, ""); err == nil || !(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)) {
		t.Errorf("reset: %v, want a connection reset", err)
	}

	body := fakepolygon.Body("AAPL", []fakepolygon.Bar{{O: 1, H: 2, L: 1, C: 2, V: 10, T: 1735707600000}}, "")
	srv.Enqueue(fakepolygon.Response{Status: 200, Body: body, TruncateAt: 20})
	if _, got, err := get(t, srv, path, ""); !errors.Is(err, io.ErrUnexpectedEOF) || len(got) != 20 {
		t.Errorf("truncated: %d bytes, %v; want 20 bytes and an unexpected EOF", len(got), err)
	}

	srv.Enqueue(fakepolygon.Response{Status: 200, Delay: time.Hour})
	c := &http.Client{Timeout: 50 * time.Millisecond}
	if _, err := c.Get(srv.URL + path); err == nil {
		t.Errorf("an hour's delay answered within 50ms")
	}
	if srv.Calls() != 3 {
		t.Errorf("calls %d, want 3", srv.Calls())
	}
}

func TestRateLimitAnswers429BeyondTheWindow(t *testing.T) {
	now := time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	srv := fakepolygon.New(t, fakepolygon.Options{RateLimit: 3, Window: time.Minute, RetryAfter: true, Now: clock})
	path := "/v2/aggs/ticker/AAPL/range/1/day/2025-01-01/2025-01-10"

	statuses := func(n int, step time.Duration) (out []int, retryAfter string) {
		for range n {
			resp, _, err := get(t, srv, path, "")
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, resp.StatusCode)
			retryAfter = resp.Header.Get("Retry-After")
			advance(step)
		}
		return out, retryAfter
	}
	got, ra := statuses(4, 10*time.Second) // t = 0, 10, 20 admitted; 30 refused
	if want := []int{200, 200, 200, 429}; !equal(got, want) || ra != "30" {
		t.Fatalf("statuses %v Retry-After %q, want %v and 30", got, ra, want)
	}
	// t = 60: the call of t = 0 has left the window (60 s, 0] and only that
	// one; at 61 and 62 the calls of 10, 20 and 60 fill it again.
	advance(20 * time.Second)
	if got, ra := statuses(3, time.Second); !equal(got, []int{200, 429, 429}) || ra != "8" {
		t.Fatalf("after the window moved: %v Retry-After %q, want [200 429 429] and 8", got, ra)
	}
	if srv.Throttled() != 3 || srv.Calls() != 7 {
		t.Fatalf("throttled %d calls %d", srv.Throttled(), srv.Calls())
	}
}

func TestMaxInWindow(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(ms ...int) []time.Time {
		var ts []time.Time
		for _, m := range ms {
			ts = append(ts, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return ts
	}
	for _, tc := range []struct {
		times  []time.Time
		window time.Duration
		want   int
	}{
		{nil, time.Second, 0},
		{at(0, 100, 200, 300), 100 * time.Millisecond, 2},
		{at(0, 100, 200, 300), 99 * time.Millisecond, 1},
		{at(0, 1, 2, 500, 501), time.Second, 5},
		{at(0, 10, 1000, 1001, 1002), 5 * time.Millisecond, 3},
	} {
		if got := fakepolygon.MaxInWindow(tc.times, tc.window); got != tc.want {
			t.Errorf("MaxInWindow(%v, %v) = %d, want %d", tc.times, tc.window, got, tc.want)
		}
	}
}

func equal(a, b []int) bool {
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

func TestHandlerMayUseTheServer(t *testing.T) {
	var srv *fakepolygon.Server
	srv = fakepolygon.New(t, fakepolygon.Options{Handler: func(r fakepolygon.Request) fakepolygon.Response {
		if srv.Calls() == 1 { // the first call fails, the others get bars
			return fakepolygon.JSON(http.StatusBadGateway, `{}`)
		}
		bars, _ := fakepolygon.SyntheticBars(r.Ticker, r.From, r.To)
		return fakepolygon.JSON(http.StatusOK, string(fakepolygon.Body(r.Ticker, bars, "")))
	}})
	path := "/v2/aggs/ticker/AAPL/range/1/day/2025-01-06/2025-01-06"
	for _, want := range []int{502, 200} {
		if resp, _, err := get(t, srv, path, ""); err != nil || resp.StatusCode != want {
			t.Fatalf("got %v %v, want %d", resp, err, want)
		}
	}
	if reqs := srv.Requests(); reqs[0].Status != 502 || reqs[1].Status != 200 {
		t.Fatalf("recorded statuses %d, %d", reqs[0].Status, reqs[1].Status)
	}
}
