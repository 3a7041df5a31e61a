package main

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// nightSizes are the held-ticker counts BenchmarkNight measures.
var nightSizes = []int{10, 500, 10000}

// renderNights writes the market-data cost of a night, cold and warm, for
// both designs, with the targets beside it.
func renderNights(p func(string, ...any), r report) {
	p("## Market data per night")
	p("")
	p("`go test -run '^$' -bench BenchmarkNight -benchtime 1x ./internal/benchreport`: processTicker as deployed (real Polygon client paced at the free plan's 5 calls per minute, " +
		"12.24 s a call with the 2 %% margin) handed, in batches of 10 with the pacer drained per batch as each invocation does, the night's day message and one message per held ticker, " +
		"against `fakepolygon` rate-limited at 5 calls in any sliding minute (a 429 beyond). The pacing and the server share a fake clock, so the market-data time is the time the calls take " +
		"at 5 calls per minute, measured without waiting it. A cold night finds nothing stored (2026-11-23); the warm night follows it (2026-11-24, or when a cold night that overran is done). " +
		"**stored** is the design of decision 0002 (one grouped-daily and one splits call, a per-ticker call only to fill a ticker's history); **per-ticker** is the design it replaces (every ticker its own call every night, nothing stored). " +
		"Every night of every run stored one row per ticker, checked by the benchmark. The per-ticker rows include its redelivery check (a `GetItem`, 0.5 RCU a ticker), which the design before issue 11 did not make.")
	p("")
	p("Measured %s on %s, %d cores (%s).", r.Date.Format("2006-01-02 15:04 MST"), r.Machine.CPU, r.Machine.Cores, r.Machine.Go)
	p("")
	p("| held tickers | night | design | market-data calls | market-data time at 5 calls/min | most calls in a minute | 429 answers | DynamoDB WCU | DynamoDB RCU |")
	p("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	units := map[string][2]float64{}
	for _, n := range nightSizes {
		for _, night := range []string{"cold", "warm"} {
			for _, design := range []string{"stored", "per-ticker"} {
				g, ok := find(r.MarketNight, fmt.Sprintf("BenchmarkNight/%s/tickers=%d", design, n))
				if !ok {
					continue
				}
				m := func(k string) float64 { return g.Metrics[night+"-"+k] }
				wcu, rcu := "—", "—"
				if w, ok := g.Metrics[night+"-wcu"]; ok {
					wcu, rcu = fmt.Sprintf("%.0f", w), fmt.Sprintf("%.1f", g.Metrics[night+"-rcu"])
					units[design+night] = [2]float64{w / float64(n), g.Metrics[night+"-rcu"] / float64(n)}
				} else if u, ok := units[design+night]; ok {
					wcu, rcu = "≈ "+roughly(u[0]*float64(n))+" (scaled)", "≈ "+roughly(u[1]*float64(n))+" (scaled)"
				}
				p("| %d | %s | %s | %.0f | %s | %.0f | %.0f | %s | %s |", n, night, design, m("calls"), hours(m("market-h")),
					m("max-calls/min"), m("429s"), wcu, rcu)
			}
		}
	}
	p("")
	p("Targets (issue 11), read from the table: a warm night makes at most 3 market-data calls whatever the number of tickers (plus one per new or split ticker); " +
		"0 × 429 at 5 calls per minute; 500 tickers in under a minute of market-data time (the per-ticker design: 100 minutes); a cold night at most one call per ticker plus the grouped and splits calls.")
	p("")
	p("DynamoDB capacity units are dynalite's `ConsumedCapacity` (every call made with `ReturnConsumedCapacity: TOTAL`; dynalite computes them from the items' sizes as DynamoDB bills them: " +
		"a write unit per KB written, half a read unit per 4 KB read with eventual consistency). The 10,000-ticker nights run on in-memory stores (dynalite would hold 2.8 million bars for minutes on this machine): " +
		"their units are the 500-ticker night's per ticker, × 10,000 (every ticker's items have the same shape). A cold night writes each ticker's ≈ 276 bars once (its backfill); a warm night writes one bar " +
		"and one row per ticker and reads each ticker's stored window of 400 days (≈ 25 KB, ≈ 3 read units). Costs at these rates: [cost.md](cost.md).")
	p("")
}

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
