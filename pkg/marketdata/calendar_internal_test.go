package marketdata

import (
	"strings"
	"testing"
	"time"
)

// The holiday table is typed by hand from the NYSE list; catch typos that put
// a closure on a weekend or a named holiday on the wrong weekday.
func TestHolidayTableIsConsistent(t *testing.T) {
	wantWeekday := map[string]time.Weekday{
		"Good Friday":                 time.Friday,
		"Thanksgiving Day":            time.Thursday,
		"Martin Luther King, Jr. Day": time.Monday,
		"Washington's Birthday":       time.Monday,
		"Memorial Day":                time.Monday,
		"Labor Day":                   time.Monday,
	}
	perYear := map[int]int{}
	for date, name := range nyseHolidays {
		d, err := time.Parse(DateLayout, date)
		if err != nil {
			t.Fatalf("holiday %q: %v", date, err)
		}
		perYear[d.Year()]++
		if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
			t.Errorf("holiday %s (%s) falls on a %s", date, name, wd)
		}
		if wd, ok := wantWeekday[name]; ok && d.Weekday() != wd {
			t.Errorf("holiday %s (%s) is a %s, want %s", date, name, d.Weekday(), wd)
		}
		if strings.HasPrefix(name, "Thanksgiving") && (d.Month() != time.November || d.Day() < 22 || d.Day() > 28) {
			t.Errorf("Thanksgiving %s is not the fourth Thursday of November", date)
		}
	}
	// Ten regular holidays a year; 2025 adds the day of mourning; 2028 has no
	// observed New Year's Day.
	want := map[int]int{2024: 10, 2025: 11, 2026: 10, 2027: 10, 2028: 9}
	for y, n := range want {
		if perYear[y] != n {
			t.Errorf("%d: %d holidays, want %d", y, perYear[y], n)
		}
	}
}

// isDate must agree with time.Parse on every kind of input it sees.
func TestIsDateAgreesWithTimeParse(t *testing.T) {
	inputs := []string{
		"2026-03-06", "2024-02-29", "2025-02-29", "2026-02-28", "2026-04-31", "2026-12-31", "2026-13-01",
		"2026-00-10", "2026-01-00", "0000-01-01", "9999-12-31", "2026-3-06", "2026/03/06", "2026-03-0a",
		"", "2026-03-06 ", "+026-03-06", "2026-03-32", "1900-02-29", "2000-02-29",
	}
	for _, s := range inputs {
		_, err := time.Parse(DateLayout, s)
		if got, want := isDate(s), err == nil; got != want {
			t.Errorf("isDate(%q) = %v, time.Parse says %v", s, got, want)
		}
	}
}
