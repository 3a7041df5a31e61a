// Package marketdata is the market-data core: a daily bar, the New York
// trading date it belongs to, the rules a series of bars must follow before
// indicators are computed from it, and the NYSE trading calendar.
//
// # The calendar
//
// The NYSE calendar is derived by rule for any year from CalendarFirstYear
// (2000) on, with no last year: weekends; New Year's Day, Martin Luther King,
// Jr. Day, Washington's Birthday, Good Friday (from Easter by the Gregorian
// computus), Memorial Day, Juneteenth (from 2022), Independence Day, Labor
// Day, Thanksgiving Day and Christmas Day, moved off weekends as NYSE Rule 7.2
// says (a Saturday New Year's Day is not observed on the Friday that ends the
// year); and the special closures the exchange announced (September 11–14,
// 2001, days of mourning, Hurricane Sandy). Dates before 2000 are outside the
// calendar: not trading days, and no walk goes there. Early closes (13:00)
// are known too (EarlyClose, SessionClose), while CloseInstant and
// LastTradingDay keep 16:00 for every session.
//
// A Calendar value answers every question about trading days:
// IsTradingDay, Closed (why a weekday is closed), Closures (a year's list),
// PreviousTradingDay, NextTradingDay, TradingDays (a range), LastTradingDay
// (the newest complete session at an instant), EarlyClose and SessionClose.
// NYSE() (the zero Calendar) is the calendar by rule;
// Calendar.WithClosures returns one with more closed days, for closures
// learnt at run time (a session that was never published). The package-level
// functions of the same names use the calendar by rule; dates are YYYY-MM-DD
// strings throughout, and a malformed one is never a trading day.
//
// It is pure (no I/O) and embeds the time-zone database, so the New York
// zone is available on Lambda's provided.al2023 image and on any machine.
package marketdata

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // America/New_York must resolve where /usr/share/zoneinfo is missing (Lambda provided.al2023).
)

// newYork is the exchange's zone. Daily bars start at midnight New York time
// and the close is 16:00 New York time, whatever the offset to UTC that day.
// It is loaded on first use rather than at package initialisation: every
// bootstrap runs package initialisation in its Lambda init phase, and
// processTickers never needs the zone.
var newYork = sync.OnceValue(mustLoadNewYork)

func mustLoadNewYork() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		// Unreachable: time/tzdata is embedded above.
		panic(fmt.Sprintf("marketdata: load America/New_York: %v", err))
	}
	return loc
}

// NewYork returns the America/New_York location used for trading dates.
func NewYork() *time.Location { return newYork() }

// DateLayout is the layout of a trading date, YYYY-MM-DD.
const DateLayout = time.DateOnly

// Bar is one daily bar of a ticker.
type Bar struct {
	// Date is the trading date in New York, YYYY-MM-DD.
	Date string
	// Start is the instant the bar begins (midnight New York of Date).
	Start time.Time
	// Open, High, Low and Close are prices in the quote currency; Close is the
	// value indicators use.
	Open, High, Low, Close float64
	// Volume is the traded volume; it can be fractional (fractional shares).
	Volume float64
}

// TradingDate returns the New York calendar date (YYYY-MM-DD) of the instant
// unixMillis, such as a Polygon daily bar's `t` (midnight New York of the
// trading date). It never uses UTC or the process's local zone: midnight New
// York is the previous evening in any zone west of New York.
func TradingDate(unixMillis int64) string {
	return time.UnixMilli(unixMillis).In(newYork()).Format(DateLayout)
}

// ErrInvalidBar is wrapped by every error Validate returns, so callers can
// classify a bad series with errors.Is (it is a permanent data problem:
// fetching the same series again gives the same answer).
var ErrInvalidBar = errors.New("invalid bar")

// BarError says which bar of a series broke which rule.
type BarError struct {
	// Index is the bar's position in the series, from 0.
	Index int
	// Date is the bar's trading date as given (may be empty or malformed).
	Date string
	// Reason says what is wrong, in a few words.
	Reason string
}

func (e *BarError) Error() string {
	return fmt.Sprintf("%v %d (%s): %s", ErrInvalidBar, e.Index, e.Date, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidBar) true.
func (e *BarError) Unwrap() error { return ErrInvalidBar }

// Validate checks that bars can be used for indicators: each has a well-formed
// date, dates are strictly ascending (so one bar per trading date), and every
// close is finite and positive. The first broken rule is returned as a
// *BarError naming the bar by index and date. An empty series is valid; it is
// the caller's decision whether "no bars" is an error.
func Validate(bars []Bar) error {
	for i := range bars {
		b := &bars[i]
		if !isDate(b.Date) {
			return &BarError{Index: i, Date: b.Date, Reason: "date is not YYYY-MM-DD"}
		}
		if math.IsNaN(b.Close) || math.IsInf(b.Close, 0) || b.Close <= 0 {
			return &BarError{Index: i, Date: b.Date, Reason: fmt.Sprintf("close %v is not a finite positive price", b.Close)}
		}
		if i == 0 {
			continue
		}
		// YYYY-MM-DD strings order like the dates they name.
		prev := bars[i-1].Date
		switch c := strings.Compare(b.Date, prev); {
		case c == 0:
			return &BarError{Index: i, Date: b.Date, Reason: "second bar for the same trading date"}
		case c < 0:
			return &BarError{Index: i, Date: b.Date, Reason: fmt.Sprintf("out of order: follows %s", prev)}
		}
	}
	return nil
}

// Closes returns the closing prices of bars, in order.
func Closes(bars []Bar) []float64 {
	out := make([]float64, len(bars))
	for i := range bars {
		out[i] = bars[i].Close
	}
	return out
}

// isDate reports whether s is a real calendar date in YYYY-MM-DD form. It is
// time.Parse(DateLayout, s) == nil without the parser's cost, which dominated
// Validate on long series.
func isDate(s string) bool {
	_, _, _, ok := parseDate(s)
	return ok
}

// parseDate returns the year, month and day of s, a YYYY-MM-DD date, and
// whether s is a real calendar date in that form.
func parseDate(s string) (y, m, d int, ok bool) {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return 0, 0, 0, false
	}
	num := func(from, to int) int {
		n := 0
		for i := from; i < to; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, m, d = num(0, 4), num(5, 7), num(8, 10)
	if y < 0 || m < 1 || m > 12 || d < 1 || d > daysIn(time.Month(m), y) {
		return 0, 0, 0, false
	}
	return y, m, d, true
}

func daysIn(m time.Month, year int) int {
	if m == time.February && year%4 == 0 && (year%100 != 0 || year%400 == 0) {
		return 29
	}
	return int(daysPerMonth[m])
}

var daysPerMonth = [13]uint8{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
