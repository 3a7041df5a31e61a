package config

import (
	"strings"
	"testing"
	"time"
)

func lookup(m map[string]string) Lookup {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnvReportsFirstProblemNamingTheVariable(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		read func(*Env)
		want string // substring of the error; "" means no error
	}{
		{"required missing", nil, func(e *Env) { e.Required("TABLE") }, "TABLE is required"},
		{"required blank", map[string]string{"TABLE": "  "}, func(e *Env) { e.Required("TABLE") }, "TABLE is required"},
		{"int malformed", map[string]string{"N": "five"}, func(e *Env) { e.Int("N", 5, 0, 10) }, `N must be an integer, got "five"`},
		{"int out of range", map[string]string{"N": "11"}, func(e *Env) { e.Int("N", 5, 0, 10) }, "N must be between 0 and 10"},
		{"int default", nil, func(e *Env) {
			if e.Int("N", 5, 0, 10) != 5 {
				panic("default")
			}
		}, ""},
		{"url relative", map[string]string{"U": "api.polygon.io"}, func(e *Env) { e.URL("U", "https://x") }, "U must be an absolute http(s) URL"},
		{"url with credentials", map[string]string{"U": "https://k:s@host"}, func(e *Env) { e.URL("U", "https://x") }, "U must not carry credentials"},
		{"duration malformed", map[string]string{"D": "5"}, func(e *Env) { e.Duration("D", time.Second, 0, time.Hour) }, "D must be a duration"},
		{"one of", map[string]string{"L": "loud"}, func(e *Env) { e.OneOf("L", "info", "info", "debug") }, `L must be one of info, debug, got "loud"`},
		{"first error wins", nil, func(e *Env) { e.Required("A"); e.Required("B") }, "A is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewEnv(lookup(tt.env))
			tt.read(e)
			err := e.Err()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestURLTrimsTrailingSlash(t *testing.T) {
	e := NewEnv(lookup(map[string]string{"U": "http://127.0.0.1:9000/"}))
	if got := e.URL("U", ""); got != "http://127.0.0.1:9000" || e.Err() != nil {
		t.Fatalf("got %q, %v", got, e.Err())
	}
}

func TestEveryLoaderReportsABadLogLevelTheSameWay(t *testing.T) {
	base := map[string]string{
		"STAGE": "dev", "LOG_LEVEL": "loud", "USER_PORTFOLIOS_TABLE": "u", "PORTFOLIO_POSITIONS_TABLE": "p",
		"TICKER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/q.fifo", "TICKER_DLQ_URL": "https://sqs.us-east-1.amazonaws.com/1/dlq.fifo", "TICKER_DATA_TABLE": "t", "DAILY_BARS_TABLE": "b",
		"PORTFOLIO_ANALYSES_TABLE": "a", "POLYGON_API_KEY": "k",
		"ANALYSIS_RESERVATIONS_TABLE": "r", "ANALYSIS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/1/portfolio-analysis-queue-dev",
	}
	loaders := map[string]func(Lookup) error{
		"processTickers":   func(l Lookup) error { _, err := LoadProcessTickers(l); return err },
		"processTicker":    func(l Lookup) error { _, err := LoadProcessTicker(l); return err },
		"analyzePortfolio": func(l Lookup) error { _, err := LoadAnalyzePortfolio(l); return err },
	}
	const want = `configuration: LOG_LEVEL must be one of debug, info, warn, error, got "loud"`
	for name, load := range loaders {
		if err := load(lookup(base)); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
}
