package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zsmseven/backend/internal/devstack"
)

// failingWrites stands between the functions and dynalite and refuses every
// DynamoDB write that names one portfolio with a 500 InternalServerError:
// whatever an analysis stores about that portfolio (its reservation, its
// result, in however many items), it cannot be stored. Reads and the other
// writes go through.
type failingWrites struct {
	srv     *httptest.Server
	target  atomic.Pointer[httputil.ReverseProxy]
	refused atomic.Int64
}

// dynamoWrites are the DynamoDB operations that write.
var dynamoWrites = map[string]bool{"PutItem": true, "UpdateItem": true, "DeleteItem": true, "BatchWriteItem": true, "TransactWriteItems": true}

func newFailingWrites(t *testing.T, portfolio string) *failingWrites {
	t.Helper()
	f := &failingWrites{}
	name, _ := json.Marshal(portfolio) // as a request carries it: a JSON string
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".") // DynamoDB_20120810.PutItem
		if dynamoWrites[op] && bytes.Contains(body, name) {
			f.refused.Add(1)
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error (injected by the test)"}`)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.target.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// endpoint is runOptions.functionsDynamoDB: the proxy, in front of dynalite.
func (f *failingWrites) endpoint(dynalite string) string {
	u, err := url.Parse(dynalite)
	if err != nil {
		panic(fmt.Sprintf("dynalite endpoint %q: %v", dynalite, err))
	}
	f.target.Store(httputil.NewSingleHostReverseProxy(u))
	return f.srv.URL
}

// `zsm run --seed FILE --portfolio '*'` with a portfolio whose analysis can
// never be stored: the portfolio is handed back, received again at once,
// five times, and dead-lettered; the 40 others are analyzed, and the run
// ends — within a minute, not after the deployed visibility timeouts — with
// a line naming the portfolio's outcome.
func TestRunAllPortfoliosWithOneThatAlwaysFails(t *testing.T) {
	// The SDK would retry each refused write twice more, with back-off:
	// slower, the same outcome.
	t.Setenv("AWS_MAX_ATTEMPTS", "1")
	const doomed = "Doomed Portfolio"
	store := newFailingWrites(t, doomed)

	var portfolios []map[string]any
	for i := range 40 {
		var pos []map[string]any
		for j := range 3 {
			pos = append(pos, map[string]any{"ticker": devstack.SampleSymbols[(i+j)%len(devstack.SampleSymbols)], "quantity": 1 + j})
		}
		portfolios = append(portfolios, map[string]any{"name": fmt.Sprintf("P%02d", i), "positions": pos})
	}
	portfolios = append(portfolios, map[string]any{"name": doomed, "positions": []map[string]any{{"ticker": "AAPL", "quantity": 5}, {"ticker": "NVDA", "quantity": 2}}})
	file, _ := json.Marshal(map[string]any{"portfolios": portfolios})
	seed, err := devstack.ParseSeed(file)
	if err != nil {
		t.Fatal(err)
	}

	// A minute, then the run is interrupted (Ctrl-C): a cancellation, not a
	// deadline, which would flow into the invocations' (the analysis hands
	// back a message it has less than a minute left to start).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var late atomic.Bool
	defer time.AfterFunc(time.Minute, func() { late.Store(true); cancel() }).Stop()
	o := runOptions{logDir: filepath.Join(t.TempDir(), "logs"), portfolio: "*", seed: seed, functionsDynamoDB: store.endpoint}
	var out, progress bytes.Buffer
	err = runPipeline(ctx, o, noKeys, &out, &progress)
	if late.Load() {
		t.Fatalf("the run did not end within a minute: %v\n%s", err, progress.String())
	}
	want := `analysis of "Doomed Portfolio" failed on each of its 5 receives: dead-lettered`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("run error %v, want %q\n%s", err, want, progress.String())
	}
	p := progress.String()
	for _, want := range []string{
		"shortened  a message handed back (handler error, batchItemFailures, deadline) is received again at once",
		"(deployed: 18m0s tickers, 30m0s analyses)",
		"fan-out: 41 portfolios queued",
		"45 invocations", // 40 + 5 receives of the doomed one
		"5 handed back (retried), 1 dead-lettered",
		`dead-lettered locally after 5 receives, as portfolio-analysis-dlq-local would take them: "Doomed Portfolio"`,
	} {
		if !strings.Contains(p, want) {
			t.Errorf("progress lacks %q:\n%s", want, p)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^  \[\d+\] "Doomed Portfolio": failed: `).FindAllString(p, -1)); n != 5 {
		t.Errorf("%d failure lines for the doomed portfolio, want one per receive (5):\n%s", n, p)
	}
	if n := len(regexp.MustCompile(`(?m)^  \[\d+\] "P\d\d": `).FindAllString(p, -1)); n != 40 {
		t.Errorf("%d outcome lines for the 40 others, want 40:\n%s", n, p)
	}
	if !strings.Contains(out.String(), "41 portfolios: ") || !strings.Contains(out.String(), "1 never analyzed") {
		t.Errorf("result:\n%s", out.String())
	}
	if store.refused.Load() < 5 {
		t.Errorf("%d writes refused, want at least one per receive", store.refused.Load())
	}
}
