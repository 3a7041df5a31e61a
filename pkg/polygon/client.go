// Package polygon reads market data from Polygon.io (also served as
// Massive): one ticker's daily bars (aggregates), one day of the whole market
// (grouped daily) and the stock splits of a date range — their wire formats
// (aggs.go, grouped.go, splits.go) and an HTTP client (client.go) that keeps
// the key out of URLs, logs and errors, follows next_url, classifies every
// error as permanent or transient, retries the transient ones within the
// caller's deadline, and paces every request to the plan's rate.
package polygon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/pacing"
	"github.com/zsmseven/backend/pkg/retry"
	"github.com/zsmseven/backend/pkg/symbol"
)

// Defaults of Options.
const (
	// DefaultAttemptTimeout bounds one HTTP request (headers and body).
	DefaultAttemptTimeout = 30 * time.Second
	// DefaultMaxPages bounds the next_url pages followed for one query. With
	// limit=50000 a daily query fits in one page; the bound stops a server
	// that links pages forever.
	DefaultMaxPages = 20
	// MaxBodyBytes caps a response body. 50,000 daily bars are about 5 MB.
	MaxBodyBytes = 8 << 20
)

// DefaultRetry is the retry policy used for the zero fields of
// Options.Retry: 4 attempts, full jitter from 1 s capped at 20 s, a server's
// Retry-After honoured up to a minute.
var DefaultRetry = retry.Policy{Attempts: 4, Base: time.Second, Cap: 20 * time.Second, MaxRetryAfter: time.Minute}

// Options configure a Client. Only APIKey is required.
type Options struct {
	// BaseURL is the API's scheme and host; "" means deploy.DefaultPolygonBaseURL
	// (api.massive.com serves the same).
	BaseURL string
	// APIKey returns the key, sent only as "Authorization: Bearer". It is
	// called once per DailyBars (the caller caches). An empty key is a
	// permanent ErrUnauthorized; an error is returned wrapped, keeping its
	// classification. StaticKey wraps a fixed key.
	APIKey func(ctx context.Context) (string, error)
	// Pacer paces every HTTP request, retries and next_url pages included
	// (pacing.New(deploy.VarPolygonCallsPerMinute's value, ...); the free plan's 5 calls a
	// minute are deploy.DefaultPolygonCallsPerMinute). nil means unlimited.
	// Whoever builds it drains it at the start of each invocation.
	Pacer *pacing.Limiter
	// HTTPClient sends the requests; nil is NewHTTPClient(). Redirects are
	// never followed, whatever client is given.
	HTTPClient *http.Client
	// AttemptTimeout bounds each HTTP request (within the ctx deadline);
	// 0 means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// MaxPages bounds the next_url pages of one query; 0 means DefaultMaxPages.
	MaxPages int
	// Logger receives progress (debug, rate-limit waits at info) and
	// failed attempts (warn). Never the key, never a full URL. nil discards.
	Logger *slog.Logger
	// Retry is the retry policy; its zero fields take DefaultRetry's, and
	// nil Now and Sleep take this Options' Now and Sleep.
	Retry retry.Policy
	// Now is the clock of Retry-After dates; nil is time.Now.
	Now func() time.Time
	// Sleep waits between retries unless Retry.Sleep is set;
	// nil uses a timer. Tests give a fake clock here.
	Sleep func(ctx context.Context, d time.Duration) error
}

// StaticKey is an Options.APIKey that always returns key.
func StaticKey(key string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return key, nil }
}

// Client fetches daily bars. It is safe for concurrent use; the pacing is
// shared by all its calls.
type Client struct {
	base     *url.URL
	key      func(context.Context) (string, error)
	http     *http.Client
	pacer    *pacing.Limiter
	policy   retry.Policy
	timeout  time.Duration
	maxPages int
	log      *slog.Logger
	now      func() time.Time
	calls    atomic.Int64
}

// New returns a Client, or an error naming the bad option.
func New(o Options) (*Client, error) {
	base := o.BaseURL
	if base == "" {
		base = deploy.DefaultPolygonBaseURL
	}
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		// Not echoed: a mistyped URL may carry a key.
		return nil, errors.New("polygon: base URL does not parse")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("polygon: base URL %s://%s… must be an absolute http(s) URL without credentials, query or fragment",
			oneLine(u.Scheme, 10), oneLine(u.Hostname(), 100))
	}
	if o.APIKey == nil {
		return nil, errors.New("polygon: no API key source")
	}
	c := &Client{
		base:     u,
		key:      o.APIKey,
		timeout:  o.AttemptTimeout,
		maxPages: o.MaxPages,
		log:      o.Logger,
		now:      o.Now,
		policy:   o.Retry,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultAttemptTimeout
	}
	if c.maxPages <= 0 {
		c.maxPages = DefaultMaxPages
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	sleep := o.Sleep
	if sleep == nil {
		sleep = retry.Sleep
	}
	p := &c.policy
	if p.Attempts <= 0 {
		p.Attempts = DefaultRetry.Attempts
	}
	if p.Base <= 0 {
		p.Base = DefaultRetry.Base
	}
	if p.Cap <= 0 {
		p.Cap = DefaultRetry.Cap
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = DefaultRetry.MaxRetryAfter
	}
	if p.Now == nil {
		p.Now = c.now
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = NewHTTPClient()
	}
	cp := *hc // our own copy: never change the caller's client
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &cp
	c.pacer = o.Pacer
	return c, nil
}

// NewHTTPClient returns the client's default HTTP client: no keep-alives, so
// that net/http never re-sends a request on its own (it replays a GET that
// failed on a reused connection), which would bypass the pacing. The wiring
// wraps its transport to count the calls (metrics.Recorder.Transport).
func NewHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DisableKeepAlives:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		// No ResponseHeaderTimeout: the attempt's context bounds the
		// whole exchange, headers and body, with one clear error.
	}}
}

// Calls is the number of HTTP requests the client has sent.
func (c *Client) Calls() int64 { return c.calls.Load() }

// DailyBars returns the daily bars of ticker from one date to another
// (YYYY-MM-DD, both included) as the market printed them (adjusted=false:
// the same whenever they are fetched; the ledger of splits adjusts them when
// they are read), ascending and validated; a bar whose prices or volume
// cannot be used (marketdata.CheckPrices) is left out and logged. Errors are classified
// (retry.IsPermanent) and carry ErrUnauthorized, ErrNoData or ErrRateLimited
// when those apply; a refused key or plan also wraps marketdata.ErrKeyRefused
// or marketdata.ErrNotEntitled, a range before the plan's history
// marketdata.ErrOutsidePlan.
func (c *Client) DailyBars(ctx context.Context, ticker, from, to string) ([]marketdata.Bar, error) {
	t, err := symbol.Normalize(ticker)
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("polygon daily bars: %w", err))
	}
	if !ascendingDates(from, to) {
		return nil, retry.Permanent(fmt.Errorf("polygon daily bars %s: range %.12q..%.12q is not two ascending YYYY-MM-DD dates", t, from, to))
	}
	what := fmt.Sprintf("polygon daily bars %s %s..%s", t, from, to)
	key, redact, err := c.apiKey(ctx, what)
	if err != nil {
		return nil, err
	}

	next := c.base.JoinPath("v2", "aggs", "ticker", t, "range", "1", "day", from, to)
	next.RawQuery = "adjusted=false&sort=asc&limit=50000"
	merged := &Aggregates{Ticker: t}
	for page := 1; ; page++ {
		var a *Aggregates
		err := c.fetch(ctx, t, next.String(), page, key, redact, func(body []byte) error {
			var err error
			if a, err = DecodeAggregates(body); err != nil {
				// A 200 whose body does not decode, or carries a status other
				// than OK or DELAYED, was most likely cut or garbled on the
				// way, or a passing upstream fault: transient (the attempts
				// bound the cost).
				return retry.Transient(fmt.Errorf("HTTP 200 body: %s", oneLine(redact(err.Error()), 300)), 0)
			}
			if a.Ticker != "" && !strings.EqualFold(a.Ticker, t) {
				return retry.Permanent(fmt.Errorf("answer is for ticker %q", oneLine(redact(a.Ticker), 20)))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if page == 1 {
			merged.QueryCount, merged.Adjusted, merged.Status, merged.RequestID = a.QueryCount, a.Adjusted, a.Status, a.RequestID
		}
		merged.Results = append(merged.Results, a.Results...)
		if a.NextURL == "" || len(a.Results) == 0 {
			break
		}
		if page == c.maxPages {
			return nil, retry.Permanent(fmt.Errorf("%s: more than %d pages of results", what, c.maxPages))
		}
		if next, err = c.nextURL(a.NextURL); err != nil {
			return nil, fmt.Errorf("%s: page %d: %w", what, page+1, err)
		}
	}
	merged.ResultsCount = len(merged.Results)
	if len(merged.Results) == 0 {
		return nil, retry.Permanent(fmt.Errorf("%s: %w (resultsCount 0, status %s): unknown ticker or no trades", what, ErrNoData, oneLine(redact(merged.Status), 40)))
	}
	if merged.Status == "DELAYED" {
		c.log.DebugContext(ctx, "polygon: data delayed by the plan", "ticker", t)
	}
	bars, err := merged.Bars()
	if err != nil {
		// The bars are what Polygon holds; asking again returns the same.
		return nil, retry.Permanent(fmt.Errorf("%s: %w", what, err))
	}
	return c.sane(ctx, t, bars), nil
}

// sane returns bars without those whose prices or volume cannot be used
// (marketdata.CheckPrices: not positive, or outside the sane range — an
// error of the source, which the store could not even hold), logged with
// their count: the ticker's series then lacks those days, as it lacks a
// halted one, instead of failing whole.
func (c *Client) sane(ctx context.Context, ticker string, bars []marketdata.Bar) []marketdata.Bar {
	var skipped []string
	kept := bars[:0:0]
	for _, b := range bars {
		if reason := marketdata.CheckPrices(b); reason != "" {
			skipped = append(skipped, b.Date+": "+reason)
			continue
		}
		kept = append(kept, b)
	}
	if len(skipped) > 0 {
		c.log.WarnContext(ctx, "polygon daily bars: bars skipped, their prices or volume are not usable", "ticker", ticker,
			"skipped", len(skipped), "bars", len(bars), "examples", strings.Join(skipped[:min(len(skipped), 5)], "; "))
	}
	return kept
}

// GroupedDaily returns one trading day of the whole US stock market, OTC
// tickers included, in one call
// (GET /v2/aggs/grouped/locale/us/market/stocks/{date}?adjusted=false&include_otc=true),
// as the market printed it: the valid rows by ticker, dated in New York from
// each row's t (the END of the session, 16:00 New York, 13:00 on an early
// close), and the rows skipped with why (a symbol the validator rejects or
// that is not in its normalized spelling, such as Polygon's preferred shares
// "KIMpL"; a price or volume marketdata.CheckPrices refuses: not positive,
// or outside the sane range; a ticker sent twice, all of
// whose rows are skipped; a row of another date). An answer without rows
// (resultsCount 0: the day is not published yet, or was no session) is not
// an error: Day.Published is false. A body that is cut or does not parse is
// transient; a refused key or plan wraps marketdata.ErrKeyRefused or
// marketdata.ErrNotEntitled, a date before the plan's history
// marketdata.ErrOutsidePlan.
func (c *Client) GroupedDaily(ctx context.Context, date string) (marketdata.Day, error) {
	if !ascendingDates(date, date) {
		return marketdata.Day{}, retry.Permanent(fmt.Errorf("polygon grouped daily: date %.12q is not YYYY-MM-DD", date))
	}
	what := "polygon grouped daily " + date
	key, redact, err := c.apiKey(ctx, what)
	if err != nil {
		return marketdata.Day{}, err
	}
	u := c.base.JoinPath("v2", "aggs", "grouped", "locale", "us", "market", "stocks", date)
	u.RawQuery = "adjusted=false&include_otc=true"
	var g *Grouped
	err = c.fetch(ctx, "grouped "+date, u.String(), 1, key, redact, func(body []byte) error {
		var err error
		if g, err = DecodeGrouped(body); err != nil {
			return retry.Transient(fmt.Errorf("HTTP 200 body: %s", oneLine(redact(err.Error()), 300)), 0)
		}
		return nil
	})
	if err != nil {
		return marketdata.Day{}, fmt.Errorf("%s: %w", what, err)
	}
	if g.Status == "DELAYED" {
		c.log.DebugContext(ctx, "polygon: data delayed by the plan", "date", date)
	}
	return g.Day(date), nil
}

// Splits lists the stock splits whose execution date is from one date to
// another (YYYY-MM-DD, both included), all pages (GET
// /v3/reference/splits?execution_date.gte=…&execution_date.lte=…&limit=1000,
// following next_url). Entries that cannot be used (a symbol the validator
// rejects, a bad date or ratio) are left out and logged at warn.
func (c *Client) Splits(ctx context.Context, from, to string) ([]marketdata.Split, error) {
	if !ascendingDates(from, to) {
		return nil, retry.Permanent(fmt.Errorf("polygon splits: range %.12q..%.12q is not two ascending YYYY-MM-DD dates", from, to))
	}
	what := fmt.Sprintf("polygon splits %s..%s", from, to)
	key, redact, err := c.apiKey(ctx, what)
	if err != nil {
		return nil, err
	}
	next := c.base.JoinPath("v3", "reference", "splits")
	next.RawQuery = url.Values{"execution_date.gte": {from}, "execution_date.lte": {to}, "limit": {"1000"}}.Encode()
	var out []marketdata.Split
	skipped := 0
	for page := 1; ; page++ {
		var sp *SplitsPage
		err := c.fetch(ctx, "splits", next.String(), page, key, redact, func(body []byte) error {
			var err error
			if sp, err = DecodeSplits(body); err != nil {
				return retry.Transient(fmt.Errorf("HTTP 200 body: %s", oneLine(redact(err.Error()), 300)), 0)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		list, bad := sp.Splits()
		out = append(out, list...)
		for _, b := range bad {
			if skipped < maxSkippedLogged {
				c.log.WarnContext(ctx, "polygon: split entry skipped", "ticker", symbol.Quote(b.Ticker), "reason", b.Reason)
			}
			skipped++
		}
		if sp.NextURL == "" || len(sp.Results) == 0 {
			break
		}
		if page == c.maxPages {
			return nil, retry.Permanent(fmt.Errorf("%s: more than %d pages of results", what, c.maxPages))
		}
		if next, err = c.nextURL(sp.NextURL); err != nil {
			return nil, fmt.Errorf("%s: page %d: %w", what, page+1, err)
		}
	}
	return out, nil
}

// maxSkippedLogged bounds the log lines written for skipped entries of one
// answer.
const maxSkippedLogged = 20

// apiKey reads the key for one query and returns it with its redactor. A
// missing key, or one no header can carry, is a permanent refusal.
func (c *Client) apiKey(ctx context.Context, what string) (string, func(string) string, error) {
	key, err := c.key(ctx)
	switch {
	case err != nil:
		// Reading the key failed (the secret could not be read, say): the
		// key source's classification stands.
		return "", nil, fmt.Errorf("%s: API key: %w", what, err)
	case key == "":
		return "", nil, retry.Permanent(fmt.Errorf("%s: API key not set: %w: %w", what, ErrUnauthorized, marketdata.ErrKeyRefused))
	case !headerSafe(key):
		// net/http would refuse the header on every attempt.
		return "", nil, retry.Permanent(fmt.Errorf("%s: API key holds characters a header cannot carry: %w: %w", what, ErrUnauthorized, marketdata.ErrKeyRefused))
	}
	return key, redactor(key), nil
}

// ascendingDates reports whether from and to are YYYY-MM-DD dates, from ≤ to.
func ascendingDates(from, to string) bool {
	fd, err1 := time.Parse(time.DateOnly, from)
	td, err2 := time.Parse(time.DateOnly, to)
	return err1 == nil && err2 == nil && !td.Before(fd)
}

// fetch gets one page with retries, paced, and hands each 200 body to
// decode, whose error is already classified.
func (c *Client) fetch(ctx context.Context, what, u string, page int, key string, redact func(string) string, decode func([]byte) error) error {
	// Cancelled when the pacing finds no token before the deadline: the
	// retry loop then stops at once instead of backing off for nothing.
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	n, err := c.policy.Do(rctx, func(actx context.Context, attempt int) error {
		if err := c.pacer.Wait(actx, "polygon "+what); err != nil {
			if errors.Is(err, retry.ErrDeadline) {
				stop()
			}
			return err
		}
		err := c.attempt(actx, what, u, page, key, redact, decode)
		if err != nil {
			level := slog.LevelWarn
			if retry.IsPermanent(err) {
				level = slog.LevelError
			}
			c.log.Log(ctx, level, "polygon: attempt failed", "ticker", what, "page", page, "attempt", attempt+1,
				"permanent", retry.IsPermanent(err), "error", err.Error())
		}
		return err
	})
	if err != nil {
		tries := "1 attempt"
		if n != 1 {
			tries = fmt.Sprintf("%d attempts", n)
		}
		return fmt.Errorf("page %d, %s: %w", page, tries, err)
	}
	return nil
}

// attempt makes one HTTP request and classifies its outcome.
func (c *Client) attempt(ctx context.Context, what, u string, page int, key string, redact func(string) string, decode func([]byte) error) error {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u, nil)
	if err != nil {
		return retry.Permanent(fmt.Errorf("build request: %s", redact(err.Error())))
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "zsm-seven-backend")

	c.calls.Add(1)
	start := c.now()
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(ctx, actx, "request", err, redact)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		// A body cut short (reset, truncated, timed out) is worth another try.
		return c.transportError(ctx, actx, fmt.Sprintf("read HTTP %d body", resp.StatusCode), err, redact)
	}
	c.log.DebugContext(ctx, "polygon: answer", "ticker", what, "page", page, "status", resp.StatusCode,
		"bytes", len(body), "elapsedMs", c.now().Sub(start).Milliseconds())
	if len(body) > MaxBodyBytes {
		return retry.Permanent(fmt.Errorf("HTTP %d body larger than %d bytes", resp.StatusCode, MaxBodyBytes))
	}
	if resp.StatusCode != http.StatusOK {
		return classifyStatus(resp.StatusCode, resp.Header, body, c.now(), redact)
	}
	return decode(body)
}

// transportError classifies a failure to get or read an answer: transient
// (a timeout, a reset, a cut body), or the caller's own context ending. The
// URL that net/http puts in its errors is dropped: a next_url's cursor has
// no place in logs.
func (c *Client) transportError(ctx, actx context.Context, what string, err error, redact func(string) string) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", what, cerr)
	}
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return retry.Transient(fmt.Errorf("%s: timed out after %s", what, c.timeout), 0)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return retry.Transient(fmt.Errorf("%s: %s", what, oneLine(redact(err.Error()), 300)), 0)
}

// nextURL checks a next_url: it must stay on the base URL's scheme and host
// (the key goes wherever we send the request), and loses any apiKey query
// parameter, since our key travels in the header only.
func (c *Client) nextURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, retry.Permanent(errors.New("next_url does not parse as a URL"))
	}
	u = c.base.ResolveReference(u)
	if u.Scheme != c.base.Scheme || !strings.EqualFold(u.Host, c.base.Host) {
		return nil, retry.Permanent(fmt.Errorf("next_url leaves %s for %s://%s: not followed", c.base.Host, oneLine(u.Scheme, 10), oneLine(u.Host, 100)))
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "apikey") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	u.User = nil
	u.Fragment = ""
	return u, nil
}

// headerSafe reports whether key is visible ASCII, as a bearer token must be.
func headerSafe(key string) bool {
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] >= 0x7f {
			return false
		}
	}
	return true
}
