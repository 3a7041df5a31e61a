package config

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
)

// knownVariables are the names a configuration error may start with: the
// contract's.
var knownVariables = func() []string {
	var names []string
	for _, v := range deploy.Vars() {
		names = append(names, v.Name)
	}
	return append(names, deploy.EnvModelProvider)
}()

// parseEnvFile reads KEY=VALUE lines (the .env format, without quoting) into
// a map: the fuzzer's bytes become an environment.
func parseEnvFile(data string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(data, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok {
			env[k] = v
		}
	}
	return env
}

// FuzzLoad feeds an arbitrary environment to every function's loader. None
// may panic; a failure is one line that names the variable first
// (after an optional "configuration: "), and never echoes an API key's value; a success holds
// only values within the documented bounds.
func FuzzLoad(f *testing.F) {
	f.Add("STAGE=dev\nUSER_PORTFOLIOS_TABLE=user-portfolios-dev\nPORTFOLIO_POSITIONS_TABLE=portfolio-positions-dev\n" +
		"TICKER_QUEUE_URL=https://sqs.us-east-1.amazonaws.com/123456789012/ticker-processing-queue-dev.fifo\n" +
		"TICKER_DATA_TABLE=ticker-data-dev\nDAILY_BARS_TABLE=daily-bars-dev\nPORTFOLIO_ANALYSES_TABLE=portfolio-analyses-dev\nPOLYGON_API_KEY=pk-secret-123456")
	f.Fuzz(func(t *testing.T, data string) {
		env := parseEnvFile(data)
		lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
		keys := []string{}
		for _, k := range []string{"POLYGON_API_KEY", "XAI_API_KEY"} {
			// A key shorter than 8 bytes, or one that also occurs in another
			// variable, can show up in an error for another reason.
			if v := strings.TrimSpace(env[k]); len(v) >= 8 && !occursElsewhere(env, k, v) {
				keys = append(keys, v)
			}
		}
		checkErr := func(fn string, err error) {
			t.Helper()
			if err == nil {
				return
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("%s: error %q is not one line", fn, msg)
			}
			if !namesVariable(msg) {
				t.Fatalf("%s: error %q names no variable", fn, msg)
			}
			for _, k := range keys {
				if strings.Contains(msg, k) {
					t.Fatalf("%s: error %q echoes an API key", fn, msg)
				}
			}
		}

		pts, err := LoadProcessTickers(lookup)
		checkErr("LoadProcessTickers", err)
		if err == nil {
			nonEmpty(t, "processTickers", pts.Stage, pts.UserPortfoliosTable, pts.PortfolioPositionsTable)
			checkURL(t, "TICKER_QUEUE_URL", pts.TickerQueueURL)
			if pts.TickerMessageGroups < 1 || pts.TickerMessageGroups > 100 {
				t.Fatalf("TICKER_MESSAGE_GROUPS %d accepted", pts.TickerMessageGroups)
			}
		}

		pt, err := LoadProcessTicker(lookup)
		checkErr("LoadProcessTicker", err)
		if err == nil {
			nonEmpty(t, "processTicker", pt.Stage, pt.TickerDataTable)
			checkURL(t, "POLYGON_BASE_URL", pt.PolygonBaseURL)
			if pt.PolygonCallsPerMinute < 0 || pt.PolygonCallsPerMinute > 6000 || pt.TickerMessageGroups < 1 || pt.TickerMessageGroups > 100 {
				t.Fatalf("accepted out-of-range numbers %+v", pt)
			}
			if pt.RecordBudget < time.Second || pt.RecordBudget > 15*time.Minute {
				t.Fatalf("TICKER_RECORD_BUDGET %s accepted", pt.RecordBudget)
			}
			if !pt.PolygonAPIKeySet && pt.APIKeysSecretARN == "" {
				t.Fatal("accepted neither a Polygon key nor a secret")
			}
		}

		ap, err := LoadAnalyzePortfolio(lookup)
		checkErr("LoadAnalyzePortfolio", err)
		if err == nil {
			nonEmpty(t, "analyzePortfolio", ap.Stage, ap.UserPortfoliosTable, ap.PortfolioPositionsTable, ap.TickerDataTable,
				ap.PortfolioAnalysesTable, ap.ReservationsTable, ap.DefaultPortfolio, ap.Model.Name)
			checkURL(t, "XAI_API_URL", ap.Model.URL)
			checkURL(t, "ANALYSIS_QUEUE_URL", ap.AnalysisQueueURL)
			if ap.Model.MaxCompletionTokens < 256 || ap.Model.MaxCompletionTokens > 1_000_000 ||
				ap.Reserve < 0 || ap.Reserve > 5*time.Minute ||
				ap.Model.AttemptTimeout < time.Second || ap.Model.AttemptTimeout > 15*time.Minute {
				t.Fatalf("accepted out-of-range numbers %+v", ap)
			}
		}
	})
}

func occursElsewhere(env map[string]string, key, v string) bool {
	for k, other := range env {
		if k != key && strings.Contains(k+"="+other, v) {
			return true
		}
	}
	return false
}

func namesVariable(msg string) bool {
	rest := strings.TrimPrefix(msg, "configuration: ")
	for _, v := range knownVariables {
		if strings.HasPrefix(rest, v+" ") {
			return true
		}
	}
	return false
}

func nonEmpty(t *testing.T, fn string, vs ...string) {
	t.Helper()
	for i, v := range vs {
		if v == "" || strings.TrimSpace(v) != v {
			t.Fatalf("%s: field %d accepted as %q", fn, i, v)
		}
	}
}

func checkURL(t *testing.T, name, v string) {
	t.Helper()
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		t.Fatalf("%s accepted as %q", name, v)
	}
}
