package main

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// This file is the timeline every design of the market data is measured on
// (BenchmarkNights). `make bench` also copies it, with the adapter of the
// design before issue 17 (baseline_design.txt), into a git worktree of that
// commit (baselineCommit) and runs it there, so both designs play exactly
// these nights in one run. It uses only what both trees have: package
// marketdata's calendar and dates, indicators.Fields, the SDK, and the
// helpers ticker and benchKey of this package.

// nightsStep is one night of the timeline; label names a measured one.
type nightsStep struct {
	date, label string
}

// The timeline: a cold night (nothing stored), a warm one, a night after one
// missed night, a night after five, then a split that executes at the open
// of nightsSplitDate and that the provider lists only from nightsSplitListed
// on (four sessions late), measured on its listing night.
var nightsSteps = []nightsStep{
	{"2026-11-02", "cold"},
	{"2026-11-03", "warm"},
	{"2026-11-05", "missed1"}, // 2026-11-04 missed
	{"2026-11-13", "missed5"}, // 2026-11-06 and 2026-11-09..12 missed
	{"2026-11-16", ""},        // the split executes at the open: not listed yet
	{"2026-11-17", ""},
	{"2026-11-18", ""},
	{"2026-11-19", ""},
	{"2026-11-20", "split"}, // listed today
}

const (
	nightsSplitDate   = "2026-11-16"
	nightsSplitListed = "2026-11-20"
)

// nightsSizes are the held-ticker counts measured.
var nightsSizes = []int{500, 10000}

// nightsAt is 21:30 New York on the trading day d, when the schedule fires.
func nightsAt(d string) time.Time {
	c, err := marketdata.CloseInstant(d)
	if err != nil {
		panic(err)
	}
	return c.Add(5*time.Hour + 30*time.Minute)
}

// nightCost is what one night cost a design, on the fake clock.
type nightCost struct {
	calls, throttled, maxPerMinute, rows int
	// market is the fake-clock time from the night's start to an empty
	// queue: the pacing of its calls at 5 calls per minute.
	market time.Duration
	// longest is the longest invocation (batch) of processTicker.
	longest time.Duration
	// units: wcu, rcu and storage (bytes, with DynamoDB's 100 bytes of
	// overhead per item, after the night) were measured.
	units         bool
	wcu, rcu      float64
	storage       float64
	storageItems  int
	invocations   int
	perTickerCall int
}

// nightsDesign is one design of the night, as the timeline drives it.
type nightsDesign interface {
	// night plays the night of trading day d to an empty queue.
	night(b *testing.B, d string) nightCost
	// lateSplit scripts, before the first night, a split of ticker: to new
	// shares for every from old ones at the open of date, which the provider
	// lists only from listed on.
	lateSplit(b *testing.B, ticker, date, listed string, from, to float64)
	// rowMatches compares ticker's stored row of d with indicators computed
	// on the provider's adjusted bars of the design's window as of now.
	rowMatches(b *testing.B, ticker, d string) (bool, string)
}

// BenchmarkNights plays the timeline for each size with the design
// newNightsDesign builds, and reports each measured night's cost.
func BenchmarkNights(b *testing.B) {
	for _, n := range nightsSizes {
		b.Run(fmt.Sprintf("tickers=%d", n), func(b *testing.B) {
			for b.Loop() {
				d := newNightsDesign(b, n)
				split := ticker(0)
				d.lateSplit(b, split, nightsSplitDate, nightsSplitListed, 1, 4)
				for _, s := range nightsSteps {
					c := d.night(b, s.date)
					if s.label == "" {
						continue
					}
					m := func(v float64, unit string) { b.ReportMetric(v, s.label+"-"+unit) }
					m(float64(c.calls), "calls")
					m(c.market.Hours(), "market-h")
					m(c.longest.Seconds(), "longest-s")
					m(float64(c.invocations), "invocations")
					m(float64(c.throttled), "429s")
					m(float64(c.maxPerMinute), "max-calls/min")
					m(float64(c.rows), "rows")
					m(float64(c.perTickerCall), "ticker-calls")
					if c.units {
						m(c.wcu, "wcu")
						m(c.rcu, "rcu")
						m(c.storage/1e6, "storage-mb")
						m(float64(c.storageItems), "items")
					}
				}
				ok, detail := d.rowMatches(b, split, nightsSplitListed)
				v := 0.0
				if ok {
					v = 1
				}
				b.ReportMetric(v, "split-row-ok")
				if !ok {
					b.Logf("%s's row of %s: %s", split, nightsSplitListed, detail)
				}
			}
		})
	}
}

// nightsSameSnapshot compares a stored snapshot with the reference: the
// price and every indicator, to 1e-6 relative (absent on both sides counts
// as equal).
func nightsSameSnapshot(got, want indicators.Snapshot) (bool, string) {
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-6*math.Max(1, math.Abs(b)) }
	if got.AsOf != want.AsOf || !close(got.Price, want.Price) {
		return false, fmt.Sprintf("price %v as of %s, want %v as of %s", got.Price, got.AsOf, want.Price, want.AsOf)
	}
	for _, f := range indicators.Fields {
		g, w := f.Get(got), f.Get(want)
		switch {
		case g == nil && w == nil:
		case g == nil || w == nil:
			return false, fmt.Sprintf("%s %v, want %v", f.Name, g, w)
		case !close(*g, *w):
			return false, fmt.Sprintf("%s %.6f, want %.6f", f.Name, *g, *w)
		}
	}
	return true, ""
}

// nightsTableBytes scans a table and returns its size as DynamoDB bills
// storage: each item's size plus 100 bytes of overhead, and the item count.
func nightsTableBytes(ctx context.Context, client *dynamodb.Client, table string) (float64, int, error) {
	var bytes float64
	items := 0
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: aws.String(table)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return 0, 0, err
		}
		for _, it := range out.Items {
			bytes += float64(nightsItemBytes(it) + 100)
			items++
		}
	}
	return bytes, items, nil
}

// nightsItemBytes is an item's size by DynamoDB's rules: each attribute's
// name plus its value (a string its UTF-8 bytes, a number about one byte per
// two significant digits plus one, sets and documents their elements). It is
// not dynamoitem.Size because this file is also built into the worktree of
// the design before issue 17 (baseline.go), where that package does not
// exist: both designs' tables are measured by this one function.
func nightsItemBytes(it map[string]types.AttributeValue) int {
	n := 0
	for k, v := range it {
		n += len(k) + nightsValueBytes(v)
	}
	return n
}

func nightsValueBytes(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		digits := 0
		for _, c := range v.Value {
			if c >= '0' && c <= '9' {
				digits++
			}
		}
		return (digits+1)/2 + 1
	case *types.AttributeValueMemberB:
		return len(v.Value)
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberSS:
		n := 0
		for _, s := range v.Value {
			n += len(s)
		}
		return n
	case *types.AttributeValueMemberNS:
		n := 0
		for _, s := range v.Value {
			n += (len(s)+1)/2 + 1
		}
		return n
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + nightsValueBytes(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for k, e := range v.Value {
			n += 1 + len(k) + nightsValueBytes(e)
		}
		return n
	}
	return 0
}
