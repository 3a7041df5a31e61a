package marketdata_test

import (
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
	"pgregory.net/rapid"
)

// day draws a date of the calendar's years up to 2400 (the rules do not
// change after that; the years to 9999 are covered by the per-year checks).
func day(t *rapid.T, label string) time.Time {
	first := time.Date(marketdata.CalendarFirstYear, 1, 1, 0, 0, 0, 0, time.UTC)
	n := rapid.IntRange(0, 401*366).Draw(t, label)
	return first.AddDate(0, 0, n)
}

// specialClosures counts the special full-day closures of each year, as the
// NYSE announced them (all on weekdays).
var specialClosures = map[int]int{2001: 4, 2004: 1, 2007: 1, 2012: 2, 2018: 1, 2025: 1}

// Every year has the ten holidays of the rules (nine before Juneteenth was
// first observed in 2022), less New Year's Day when January 1 is a Saturday
// (never moved to December 31), plus that year's special closures; all on
// weekdays, ascending, each on the weekday and in the days its rule allows.
func TestPropertyClosuresOfAYear(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		year := rapid.IntRange(marketdata.CalendarFirstYear, 9999).Draw(t, "year")
		want := 9 + specialClosures[year]
		if year >= 2022 {
			want++
		}
		if time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).Weekday() == time.Saturday {
			want--
		}
		got := marketdata.Closures(year)
		if len(got) != want {
			t.Fatalf("%d: %d closures, want %d: %v", year, len(got), want, got)
		}
		for i, c := range got {
			d, err := time.Parse(time.DateOnly, c.Date)
			if err != nil || d.Year() != year {
				t.Fatalf("closure %+v: not a date of %d", c, year)
			}
			if i > 0 && c.Date <= got[i-1].Date {
				t.Fatalf("closures out of order: %v", got)
			}
			if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
				t.Fatalf("closure %+v on a %s", c, wd)
			}
			if marketdata.IsTradingDay(c.Date) {
				t.Fatalf("closure %+v is a trading day", c)
			}
			checkRule(t, c, d)
		}
	})
}

// checkRule checks a holiday's date against the plain statement of its rule.
func checkRule(t *rapid.T, c marketdata.Closure, d time.Time) {
	dom, wd, m := d.Day(), d.Weekday(), d.Month()
	name, observed := strings.CutSuffix(c.Reason, " (observed)")
	fixed := map[string]time.Time{
		"New Year's Day":   time.Date(d.Year(), time.January, 1, 0, 0, 0, 0, time.UTC),
		"Juneteenth":       time.Date(d.Year(), time.June, 19, 0, 0, 0, 0, time.UTC),
		"Independence Day": time.Date(d.Year(), time.July, 4, 0, 0, 0, 0, time.UTC),
		"Christmas Day":    time.Date(d.Year(), time.December, 25, 0, 0, 0, 0, time.UTC),
	}
	ok := true
	switch name {
	case "Martin Luther King, Jr. Day":
		ok = m == time.January && wd == time.Monday && dom >= 15 && dom <= 21
	case "Washington's Birthday":
		ok = m == time.February && wd == time.Monday && dom >= 15 && dom <= 21
	case "Good Friday": // Easter Sunday falls on March 22 to April 25
		ok = wd == time.Friday && !d.Before(time.Date(d.Year(), time.March, 20, 0, 0, 0, 0, time.UTC)) &&
			!d.After(time.Date(d.Year(), time.April, 23, 0, 0, 0, 0, time.UTC))
	case "Memorial Day":
		ok = m == time.May && wd == time.Monday && dom >= 25
	case "Labor Day":
		ok = m == time.September && wd == time.Monday && dom <= 7
	case "Thanksgiving Day":
		ok = m == time.November && wd == time.Thursday && dom >= 22 && dom <= 28
	default:
		h, isFixed := fixed[name]
		if !isFixed {
			// A special closure: one of the announced years.
			ok = specialClosures[d.Year()] > 0 && !observed
			break
		}
		switch h.Weekday() {
		case time.Saturday:
			ok = observed && d.Equal(h.AddDate(0, 0, -1)) && name != "New Year's Day"
		case time.Sunday:
			ok = observed && d.Equal(h.AddDate(0, 0, 1))
		default:
			ok = !observed && d.Equal(h)
		}
		if name == "Juneteenth" && d.Year() < 2022 {
			ok = false
		}
	}
	if !ok {
		t.Fatalf("closure %+v does not follow its rule", c)
	}
}

// The walks through the calendar agree with one another: the next and the
// previous trading day are trading days with none in between, and from a
// trading day they undo each other.
func TestPropertyWalks(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := day(t, "day").Format(time.DateOnly)
		next := marketdata.NextTradingDay(d)
		if !marketdata.IsTradingDay(next) || next <= d {
			t.Fatalf("NextTradingDay(%s) = %q", d, next)
		}
		if got := marketdata.TradingDays(marketdata.AddDays(d, 1), next); len(got) != 1 || got[0] != next {
			t.Fatalf("trading days from the day after %s to %s: %v", d, next, got)
		}
		prev := marketdata.PreviousTradingDay(d)
		if d <= "2000-01-03" { // the calendar's first session
			if prev != "" {
				t.Fatalf("PreviousTradingDay(%s) = %q before the calendar", d, prev)
			}
			return
		}
		if !marketdata.IsTradingDay(prev) || prev >= d {
			t.Fatalf("PreviousTradingDay(%s) = %q", d, prev)
		}
		if got := marketdata.TradingDays(prev, marketdata.AddDays(d, -1)); len(got) != 1 || got[0] != prev {
			t.Fatalf("trading days from %s to the day before %s: %v", prev, d, got)
		}
		if marketdata.IsTradingDay(d) && (marketdata.PreviousTradingDay(next) != d || marketdata.NextTradingDay(prev) != d) {
			t.Fatalf("from %s: next %s, previous %s do not lead back", d, next, prev)
		}
	})
}

// LastTradingDay never returns a closed day, its close has passed, and the
// next trading day's close has not.
func TestPropertyLastTradingDay(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		now := day(t, "day").Add(time.Duration(rapid.Int64Range(0, int64(24*time.Hour)-1).Draw(t, "time of day")))
		got := marketdata.LastTradingDay(now)
		if got == "" {
			if now.After(time.Date(2000, 1, 3, 21, 0, 0, 0, time.UTC)) {
				t.Fatalf("LastTradingDay(%v) = \"\"", now)
			}
			return
		}
		if !marketdata.IsTradingDay(got) {
			t.Fatalf("LastTradingDay(%v) = %s, not a trading day", now, got)
		}
		closeAt, _ := marketdata.CloseInstant(got)
		nextClose, _ := marketdata.CloseInstant(marketdata.NextTradingDay(got))
		if closeAt.After(now) || !nextClose.After(now) {
			t.Fatalf("LastTradingDay(%v) = %s: close %v, next close %v", now, got, closeAt, nextClose)
		}
	})
}

// A closure added at run time closes its day and changes no other.
func TestPropertyWithClosures(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		closed, other := day(t, "closed"), day(t, "other").Format(time.DateOnly)
		if wd := closed.Weekday(); wd == time.Saturday || wd == time.Sunday {
			closed = closed.AddDate(0, 0, 2)
		}
		cal, err := marketdata.NYSE().WithClosures(marketdata.Closure{Date: closed.Format(time.DateOnly), Reason: "learnt"})
		if err != nil {
			t.Fatal(err)
		}
		if cal.IsTradingDay(closed.Format(time.DateOnly)) {
			t.Fatalf("%s still a trading day", closed.Format(time.DateOnly))
		}
		if other != closed.Format(time.DateOnly) && cal.IsTradingDay(other) != marketdata.IsTradingDay(other) {
			t.Fatalf("closing %s changed %s", closed.Format(time.DateOnly), other)
		}
	})
}
