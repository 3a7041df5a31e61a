package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// nightRows are the measured nights of BenchmarkNights (nights_test.go), in
// the report's order: the metric prefix and what the night is.
var nightRows = []struct{ label, what string }{
	{"cold", "cold store (nothing stored), 2026-11-02"},
	{"warm", "warm, 2026-11-03"},
	{"missed1", "after 1 missed night, 2026-11-05"},
	{"missed5", "after 5 missed nights, 2026-11-13"},
	{"split", "a split listed 4 sessions late: its listing night, 2026-11-20"},
}

// renderNights writes the market-data nights of both designs side by side,
// with the targets beside them.
func renderNights(p func(string, ...any), r report) {
	p("## Market data per night")
	p("")
	p("`go test -run '^$' -bench BenchmarkNights -benchtime 1x ./internal/benchreport` plays one timeline of nights (`nights_test.go`) for 500 and 10,000 held tickers through processTicker as deployed — " +
		"the real Polygon client paced at the free plan's 5 calls per minute (12.24 s a call with the 2 %% margin), against `fakepolygon` rate-limited at 5 calls in any sliding minute (a 429 beyond), the pacing and the server sharing a fake clock, " +
		"so the market-data time is the time the calls take at 5 calls per minute, measured without waiting it. Each night's messages (the day message, one per ticker, and whatever processTicker queues itself: the fill, then the tickers again) " +
		"are handed over in batches of 10 in FIFO order, the pacer drained per batch as each invocation does; an invocation's length on the fake clock is reported (processTicker's timeout: 180 s). " +
		"The local Polygon's grouped answers carry the held tickers (the real one about 11,000 rows a session, more with OTC: [cost.md](cost.md) scales to it).")
	p("")
	p("**today** is the code before issue 17 (`%s`, decision 0002: adjusted bars, a ticker backfilled with its own call when new, split or gapped), measured in the same run: `make bench` adds a temporary `git worktree` of that commit, "+
		"writes the same timeline and that design's wiring (`baseline_design.txt`) into its `internal/benchreport`, and runs the benchmark there, on that commit's own pipeline, client, stores and local Polygon. "+
		"**this design** is decision 0004 (raw bars of every ticker, a splits ledger applied on read, the indicators' window of 253 sessions kept complete as queue work).", baselineCommit)
	p("")
	p("Measured %s on %s, %d cores (%s).", r.Date.Format("2006-01-02 15:04 MST"), r.Machine.CPU, r.Machine.Cores, r.Machine.Go)
	p("")
	p("| held tickers | night | design | market-data calls | of them per ticker | market-data time at 5 calls/min | invocations (longest) | most calls in a minute | 429 answers | complete rows written | DynamoDB WCU | DynamoDB RCU | table size after the night |")
	p("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	designs := []struct {
		name  string
		bench []goBench
	}{{"today", r.Baseline}, {"this design", r.Nights}}
	perTicker := map[string][3]float64{} // design|night → wcu, rcu, storage per held ticker at 500
	var splitOK []string
	for _, n := range nightSizes(r.Nights, r.Baseline) {
		for _, night := range nightRows {
			for _, d := range designs {
				g, ok := find(d.bench, fmt.Sprintf("BenchmarkNights/tickers=%d", n))
				if !ok {
					continue
				}
				m := func(k string) float64 { return g.Metrics[night.label+"-"+k] }
				wcu, rcu, size := "—", "—", "—"
				key := d.name + "|" + night.label
				if w, ok := g.Metrics[night.label+"-wcu"]; ok {
					wcu, rcu, size = fmt.Sprintf("%.0f", w), fmt.Sprintf("%.1f", m("rcu")), fmt.Sprintf("%.1f MB", m("storage-mb"))
					perTicker[key] = [3]float64{w / float64(n), m("rcu") / float64(n), m("storage-mb") / float64(n)}
				} else if u, ok := perTicker[key]; ok {
					wcu, rcu = "≈ "+roughly(u[0]*float64(n))+" (scaled)", "≈ "+roughly(u[1]*float64(n))+" (scaled)"
					size = fmt.Sprintf("≈ %.0f MB (scaled)", u[2]*float64(n))
				}
				p("| %d | %s | %s | %.0f | %.0f | %s | %.0f (%s) | %.0f | %.0f | %.0f | %s | %s | %s |", n, night.what, d.name, m("calls"), m("ticker-calls"), hours(m("market-h")),
					m("invocations"), seconds(m("longest-s")), m("max-calls/min"), m("429s"), m("rows"), wcu, rcu, size)
			}
		}
		for _, d := range designs {
			if g, ok := find(d.bench, fmt.Sprintf("BenchmarkNights/tickers=%d", n)); ok {
				verdict := "no"
				if g.Metrics["split-row-ok"] == 1 {
					verdict = "yes"
				}
				splitOK = append(splitOK, fmt.Sprintf("%s at %d tickers: %s", d.name, n, verdict))
			}
		}
	}
	p("")
	p("The split ticker's row on the listing night equals (1e-6) the indicators computed on the provider's split-adjusted bars of that night (its window): %s.", strings.Join(splitOK, "; "))
	p("")
	p("Targets (issue 17), read from the table: a cold store of any size at most 280 calls and under an hour at 5 calls per minute; a night after k missed nights at most 4 + k calls; a warm night at most 4 calls whatever the number of tickers, " +
		"0 × 429 at 5 calls per minute; a split listed up to 30 days late: every affected row equals the split-adjusted reference the night after it is listed, with no extra call.")
	p("")
	p("DynamoDB capacity units are dynalite's `ConsumedCapacity` (every call made with `ReturnConsumedCapacity: TOTAL`; a write unit per KB written, half a read unit per 4 KB read with eventual consistency), " +
		"and the table size is a scan of both tables (daily-bars and ticker-data) after the night, each item's size by DynamoDB's rules plus its 100 bytes of overhead, as storage is billed. " +
		"The 10,000-ticker timelines run on in-memory stores behind the same ports (`internal/devstack/memstore` here, that commit's `memStores` there: dynalite would take many minutes to hold millions of bars): " +
		"their units and sizes are the 500-ticker timeline's per held ticker, × 10,000 — every ticker's items have the same shape, and the grouped answers carry the held tickers, so the bars written grow with them too. " +
		"The timeline's nights follow each other on the fake clock; a night that overran (today's cold night of 10,000 tickers) delays the next. Costs at these rates, and for a market of 11,000 to 20,000 rows a session: [cost.md](cost.md).")
	p("")
}

// nightSizes are the held-ticker counts measured, ascending.
func nightSizes(benches ...[]goBench) []int {
	var out []int
	for _, bs := range benches {
		for _, b := range bs {
			if v, ok := strings.CutPrefix(b.Name, "BenchmarkNights/tickers="); ok {
				if n, err := strconv.Atoi(v); err == nil && !slices.Contains(out, n) {
					out = append(out, n)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// seconds formats a duration given in seconds: "36.7 s", "2.0 min".
func seconds(s float64) string { return hours(s / 3600) }

// hours formats a duration given in hours: "24.5 s", "1.7 h", "34.0 h".
func hours(h float64) string {
	d := time.Duration(h * float64(time.Hour))
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < 2*time.Hour:
		return fmt.Sprintf("%.1f min", d.Minutes())
	}
	return fmt.Sprintf("%.1f h", d.Hours())
}

// roughly writes v to three significant figures with thousands separators:
// a scaled figure claims no more precision.
func roughly(v float64) string {
	if v <= 0 {
		return "0"
	}
	k := math.Pow(10, math.Floor(math.Log10(v))-2)
	r := strconv.FormatFloat(math.Round(v/k)*k, 'f', 0, 64)
	var out []byte
	for i := range len(r) {
		if i > 0 && (len(r)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, r[i])
	}
	return string(out)
}
