package marketdata_test

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
)

// A grouped-daily row's t is the END of the day's window (16:00 New York),
// a per-ticker bar's t its START (midnight New York): both must give the
// same trading date. Reference instants from `TZ=America/New_York date -d
// "YYYY-MM-DD HH:MM" +%s` and, for 2020-10-14 16:00, facts.md's
// 1602705600000.
func TestTradingDateOfWindowStartAndEnd(t *testing.T) {
	tests := []struct {
		what string
		t    int64
		want string
	}{
		{"grouped 2020-10-14 (EDT), facts.md", 1602705600000, "2020-10-14"},
		{"per-ticker 2020-10-14 (EDT)", 1602648000000, "2020-10-14"},
		{"grouped Friday 2020-03-06 (EST, before DST)", 1583528400000, "2020-03-06"},
		{"grouped Monday 2020-03-09 (EDT, after DST)", 1583784000000, "2020-03-09"},
		{"per-ticker 2020-03-06 (EST)", 1583470800000, "2020-03-06"},
		{"per-ticker 2020-03-09 (EDT)", 1583726400000, "2020-03-09"},
		{"grouped Friday 2020-10-30 (EDT)", 1604088000000, "2020-10-30"},
		{"grouped Monday 2020-11-02 (EST, after DST ended)", 1604350800000, "2020-11-02"},
	}
	for _, tt := range tests {
		if got := marketdata.TradingDate(tt.t); got != tt.want {
			t.Errorf("%s: TradingDate(%d) = %s, want %s", tt.what, tt.t, got, tt.want)
		}
	}
	// A process in a zone east of New York would put the window's end on
	// the next calendar day: the conversion must not depend on it.
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.UnixMilli(1602705600000).In(tokyo).Format(time.DateOnly); d != "2020-10-15" {
		t.Fatalf("reference: in Tokyo the instant is %s", d)
	}
}

func TestSessionStart(t *testing.T) {
	for date, want := range map[string]int64{"2020-10-14": 1602648000000, "2020-03-06": 1583470800000, "2020-03-09": 1583726400000} {
		got, err := marketdata.SessionStart(date)
		if err != nil || got.UnixMilli() != want {
			t.Errorf("SessionStart(%s) = %v (%d), %v; want %d", date, got, got.UnixMilli(), err, want)
		}
	}
	if _, err := marketdata.SessionStart("2020-02-30"); err == nil {
		t.Error("SessionStart accepted 2020-02-30")
	}
}

func TestTradingDays(t *testing.T) {
	// Thanksgiving week 2026: Thursday 26 closed (NYSE calendar).
	got := marketdata.TradingDays("2026-11-21", "2026-11-30")
	want := []string{"2026-11-23", "2026-11-24", "2026-11-25", "2026-11-27", "2026-11-30"}
	if !slices.Equal(got, want) {
		t.Errorf("TradingDays = %v, want %v", got, want)
	}
	if got := marketdata.TradingDays("2026-11-30", "2026-11-21"); got != nil {
		t.Errorf("reversed range = %v", got)
	}
	if got := marketdata.PreviousTradingDay("2026-11-27"); got != "2026-11-25" {
		t.Errorf("PreviousTradingDay(2026-11-27) = %s", got)
	}
	if got := marketdata.PreviousTradingDay("2026-11-30"); got != "2026-11-27" {
		t.Errorf("PreviousTradingDay(2026-11-30) = %s", got)
	}
	if got := marketdata.AddDays("2026-03-01", -400); got != "2025-01-25" {
		t.Errorf("AddDays = %s", got)
	}
}

func TestSplitsAndPrices(t *testing.T) {
	s := marketdata.Split{Ticker: "AAPL", ExecutionDate: "2020-08-31", From: 1, To: 4}
	if s.Ratio() != 4 || marketdata.ValidateSplit(s) != nil {
		t.Errorf("4-for-1: ratio %v, %v", s.Ratio(), marketdata.ValidateSplit(s))
	}
	for _, bad := range []marketdata.Split{
		{Ticker: "X", ExecutionDate: "2020-13-01", From: 1, To: 2},
		{Ticker: "X", ExecutionDate: "2020-08-31", From: 0, To: 2},
		{Ticker: "X", ExecutionDate: "2020-08-31", From: 1, To: math.Inf(1)},
	} {
		if marketdata.ValidateSplit(bad) == nil {
			t.Errorf("ValidateSplit(%+v) accepted", bad)
		}
	}
	// The extremes of real prints: BRK.A near 7.5e5 dollars, a sub-penny
	// OTC stock at 1e-6, billions of shares of it in a day.
	for _, ok := range []marketdata.Bar{
		{Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 0},
		{Open: 745000, High: 752000.5, Low: 741000, Close: 750000, Volume: 1e4},
		{Open: 1e-6, High: 2e-6, Low: 1e-6, Close: 1e-6, Volume: 8e9},
	} {
		if r := marketdata.CheckPrices(ok); r != "" {
			t.Errorf("CheckPrices(%+v) = %q", ok, r)
		}
	}
	for _, b := range []marketdata.Bar{
		{Open: 1, High: 2, Low: 0.5, Close: 0},
		{Open: math.NaN(), High: 2, Low: 0.5, Close: 1},
		{Open: 1, High: 2, Low: -1, Close: 1},
		{Open: 1, High: 2, Low: 0.5, Close: 1, Volume: -3},
		// Finite and positive, but no price: DynamoDB cannot even store 1e200.
		{Open: 1e200, High: 1e200, Low: 1e200, Close: 1e200, Volume: 1},
		{Open: 1, High: 1.5e9, Low: 0.5, Close: 1},
		{Open: 1, High: 2, Low: 1e-200, Close: 1},
		{Open: 1, High: 2, Low: 0.5, Close: 1, Volume: 2e13},
	} {
		if marketdata.CheckPrices(b) == "" {
			t.Errorf("CheckPrices(%+v) accepted", b)
		}
	}
}
