package config

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLoadProcessTickers(t *testing.T) {
	base := map[string]string{
		"STAGE": "dev", "USER_PORTFOLIOS_TABLE": "user-portfolios-dev", "PORTFOLIO_POSITIONS_TABLE": "portfolio-positions-dev",
		"TICKER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ticker-processing-queue-dev.fifo",
		"DAILY_BARS_TABLE": "daily-bars-dev", "TICKER_DATA_TABLE": "ticker-data-dev",
	}
	c, err := LoadProcessTickers(lookup(base))
	if err != nil {
		t.Fatal(err)
	}
	want := ProcessTickers{Stage: "dev", LogLevel: slog.LevelInfo, UserPortfoliosTable: "user-portfolios-dev", PortfolioPositionsTable: "portfolio-positions-dev",
		TickerQueueURL: base["TICKER_QUEUE_URL"], TickerMessageGroups: 1, DailyBarsTable: "daily-bars-dev", TickerDataTable: "ticker-data-dev"}
	if c != want {
		t.Fatalf("config %+v\nwant   %+v", c, want)
	}

	tests := []struct {
		name string
		set  map[string]string
		want string
	}{
		{"no stage", map[string]string{"STAGE": ""}, "STAGE is required"},
		{"no positions table", map[string]string{"PORTFOLIO_POSITIONS_TABLE": ""}, "PORTFOLIO_POSITIONS_TABLE is required"},
		{"no queue", map[string]string{"TICKER_QUEUE_URL": ""}, "TICKER_QUEUE_URL is required"},
		{"no daily bars table", map[string]string{"DAILY_BARS_TABLE": ""}, "DAILY_BARS_TABLE is required"},
		{"no ticker data table", map[string]string{"TICKER_DATA_TABLE": ""}, "TICKER_DATA_TABLE is required"},
		{"queue not a URL", map[string]string{"TICKER_QUEUE_URL": "ticker-processing-queue-dev"}, "TICKER_QUEUE_URL must be an absolute http(s) URL"},
		{"groups zero", map[string]string{"TICKER_MESSAGE_GROUPS": "0"}, "TICKER_MESSAGE_GROUPS must be between 1 and 100"},
		{"groups malformed", map[string]string{"TICKER_MESSAGE_GROUPS": "two"}, "TICKER_MESSAGE_GROUPS must be an integer"},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadProcessTickers(lookup(tickersEnv(base, tt.set)))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line containing %q", err, tt.want)
			}
		})
	}
	c, err = LoadProcessTickers(lookup(tickersEnv(base, map[string]string{"TICKER_MESSAGE_GROUPS": "4", "LOG_LEVEL": "debug"})))
	if err != nil || c.TickerMessageGroups != 4 || c.LogLevel != slog.LevelDebug {
		t.Fatalf("%+v %v", c, err)
	}
}

func TestLoadProcessTicker(t *testing.T) {
	base := map[string]string{"STAGE": "prod", "TICKER_DATA_TABLE": "ticker-data-prod", "DAILY_BARS_TABLE": "daily-bars-prod",
		"API_KEYS_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:zsm-seven/prod/api-keys-AbCdEf"}
	c, err := LoadProcessTicker(lookup(base))
	if err != nil {
		t.Fatal(err)
	}
	want := ProcessTicker{Stage: "prod", LogLevel: slog.LevelInfo, TickerDataTable: "ticker-data-prod", DailyBarsTable: "daily-bars-prod", PolygonBaseURL: "https://api.polygon.io",
		PolygonCallsPerMinute: 5, RecordBudget: 27 * time.Second, APIKeysSecretARN: base["API_KEYS_SECRET_ARN"], TickerMessageGroups: 1}
	if c != want {
		t.Fatalf("config %+v\nwant   %+v", c, want)
	}

	c, err = LoadProcessTicker(lookup(map[string]string{"STAGE": "local", "TICKER_DATA_TABLE": "t", "DAILY_BARS_TABLE": "b", "POLYGON_API_KEY": "k",
		"POLYGON_BASE_URL": "http://127.0.0.1:8081/", "POLYGON_CALLS_PER_MINUTE": "0", "TICKER_MESSAGE_GROUPS": "4"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.PolygonAPIKeySet || c.PolygonBaseURL != "http://127.0.0.1:8081" || c.PolygonCallsPerMinute != 0 || c.TickerMessageGroups != 4 || c.RecordBudget != 15*time.Second {
		t.Fatalf("config %+v", c)
	}

	c, err = LoadProcessTicker(lookup(tickersEnv(base, map[string]string{
		"TICKER_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/ticker-processing-queue-prod.fifo",
		"TICKER_DLQ_URL":   "https://sqs.us-east-1.amazonaws.com/123456789012/ticker-processing-dlq-prod.fifo/"})))
	if err != nil {
		t.Fatal(err)
	}
	if c.TickerQueueURL != "https://sqs.us-east-1.amazonaws.com/123456789012/ticker-processing-queue-prod.fifo" ||
		c.TickerDLQURL != "https://sqs.us-east-1.amazonaws.com/123456789012/ticker-processing-dlq-prod.fifo" {
		t.Fatalf("queue URLs %q %q", c.TickerQueueURL, c.TickerDLQURL)
	}

	queueURL := "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo"
	tests := []struct {
		name string
		set  map[string]string
		want string
	}{
		{"no table", map[string]string{"TICKER_DATA_TABLE": ""}, "TICKER_DATA_TABLE is required"},
		{"queue without DLQ", map[string]string{"TICKER_QUEUE_URL": queueURL}, "TICKER_DLQ_URL is required when TICKER_QUEUE_URL is set"},
		{"DLQ without queue", map[string]string{"TICKER_DLQ_URL": queueURL}, "TICKER_QUEUE_URL is required when TICKER_DLQ_URL is set"},
		{"queue URL malformed", map[string]string{"TICKER_QUEUE_URL": "sqs/q.fifo", "TICKER_DLQ_URL": queueURL}, "TICKER_QUEUE_URL must be an absolute http(s) URL"},
		{"DLQ URL malformed", map[string]string{"TICKER_QUEUE_URL": queueURL, "TICKER_DLQ_URL": "ftp://x/dlq.fifo"}, "TICKER_DLQ_URL must be an absolute http(s) URL"},
		{"no key and no secret", map[string]string{"API_KEYS_SECRET_ARN": ""}, "POLYGON_API_KEY or API_KEYS_SECRET_ARN must be set"},
		{"rate malformed", map[string]string{"POLYGON_CALLS_PER_MINUTE": "5/min"}, "POLYGON_CALLS_PER_MINUTE must be an integer"},
		{"rate negative", map[string]string{"POLYGON_CALLS_PER_MINUTE": "-1"}, "POLYGON_CALLS_PER_MINUTE must be between 0 and 6000"},
		{"groups out of range", map[string]string{"TICKER_MESSAGE_GROUPS": "0"}, "TICKER_MESSAGE_GROUPS must be between 1 and 100"},
		{"base URL with key", map[string]string{"POLYGON_BASE_URL": "https://api.polygon.io/?apiKey=secret"}, "POLYGON_BASE_URL must not carry credentials"},
		{"base URL without scheme, with key", map[string]string{"POLYGON_BASE_URL": "api.polygon.io/v2/aggs?apiKey=secret"}, "POLYGON_BASE_URL must be an absolute http(s) URL"},
		{"base URL with bad scheme and credentials", map[string]string{"POLYGON_BASE_URL": "htps://user:secret@api.polygon.io"}, "POLYGON_BASE_URL must be an absolute http(s) URL"},
		{"budget", map[string]string{"TICKER_RECORD_BUDGET": "20"}, "TICKER_RECORD_BUDGET must be a duration"},
		{"log level", map[string]string{"LOG_LEVEL": "verbose"}, "LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadProcessTicker(lookup(tickersEnv(base, tt.set)))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") && (strings.Contains(err.Error(), "apiKey=secret") || strings.Contains(err.Error(), ":secret@")) {
				t.Fatalf("error echoes a key: %v", err)
			}
		})
	}
}

// tickersEnv returns a copy of base with set applied ("" unsets).
func tickersEnv(base, set map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range set {
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}
