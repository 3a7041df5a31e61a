package sandbox_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/internal/devstack/sandbox"
)

// FuzzServe requests arbitrary paths: every 200 answer must decode as
// Polygon aggregates whose bars validate; anything else is one of Polygon's
// error statuses. Never a panic.
func FuzzServe(f *testing.F) {
	for _, p := range []string{
		"/v2/aggs/ticker/AAPL/range/1/day/2025-01-01/2026-11-27",
		"/v2/aggs/ticker/BRK.B/range/1/day/2026-11-27/2026-11-27",
		"/v2/aggs/ticker/AAPL/range/1/day/2026-12-01/2026-01-01",
		"/v2/aggs/ticker//range/1/day/2025-01-01/2026-11-27",
		"/v2/aggs/ticker/AAPL/range/5/minute/2025-01-01/2026-11-27",
		"/v2/aggs/ticker/%E2%80%AE/range/1/day/2025-01-01/2026-11-27",
		"/",
	} {
		f.Add(p)
	}
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Key: "k", Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = srv.Close() })
	f.Fuzz(func(t *testing.T, path string) {
		req, err := http.NewRequest(http.MethodGet, "http://sandbox"+path, nil)
		if err != nil {
			return // not a URL a client could send
		}
		req.Header.Set("Authorization", "Bearer k")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK:
			aggs, err := polygon.DecodeAggregates(w.Body.Bytes())
			if err != nil {
				t.Fatalf("200 that does not decode: %v: %s", err, w.Body.String())
			}
			if aggs.ResultsCount > 0 {
				if _, err := aggs.Bars(); err != nil {
					t.Fatalf("bars do not validate: %v", err)
				}
			}
		case http.StatusBadRequest, http.StatusNotFound:
		default:
			t.Fatalf("status %d for %q", w.Code, path)
		}
	})
}
