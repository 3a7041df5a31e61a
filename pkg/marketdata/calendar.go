package marketdata

import (
	"fmt"
	"time"
)

// closeHour is the regular NYSE close, 16:00 New York time. Early closes
// (13:00 on some days before holidays) are not modelled: CloseInstant is a
// stable key for "the trading day", and waiting until 16:00 on an early-close
// day only delays by three hours the moment that day counts as complete.
const closeHour = 16

// nyseHolidays are the NYSE full-day closures 2024–2028, from the NYSE's
// published "Holidays & Trading Hours" list
// (https://www.nyse.com/markets/hours-calendars), including the closure for
// the National Day of Mourning for President Carter (2025-01-09). New Year's
// Day 2028 falls on a Saturday and, by NYSE rule, is not observed on Friday
// 2027-12-31. Outside 2024–2028 only weekends are excluded; extend this table
// when the NYSE publishes later years.
var nyseHolidays = map[string]string{
	"2024-01-01": "New Year's Day",
	"2024-01-15": "Martin Luther King, Jr. Day",
	"2024-02-19": "Washington's Birthday",
	"2024-03-29": "Good Friday",
	"2024-05-27": "Memorial Day",
	"2024-06-19": "Juneteenth",
	"2024-07-04": "Independence Day",
	"2024-09-02": "Labor Day",
	"2024-11-28": "Thanksgiving Day",
	"2024-12-25": "Christmas Day",

	"2025-01-01": "New Year's Day",
	"2025-01-09": "National Day of Mourning for President Carter",
	"2025-01-20": "Martin Luther King, Jr. Day",
	"2025-02-17": "Washington's Birthday",
	"2025-04-18": "Good Friday",
	"2025-05-26": "Memorial Day",
	"2025-06-19": "Juneteenth",
	"2025-07-04": "Independence Day",
	"2025-09-01": "Labor Day",
	"2025-11-27": "Thanksgiving Day",
	"2025-12-25": "Christmas Day",

	"2026-01-01": "New Year's Day",
	"2026-01-19": "Martin Luther King, Jr. Day",
	"2026-02-16": "Washington's Birthday",
	"2026-04-03": "Good Friday",
	"2026-05-25": "Memorial Day",
	"2026-06-19": "Juneteenth",
	"2026-07-03": "Independence Day (observed)",
	"2026-09-07": "Labor Day",
	"2026-11-26": "Thanksgiving Day",
	"2026-12-25": "Christmas Day",

	"2027-01-01": "New Year's Day",
	"2027-01-18": "Martin Luther King, Jr. Day",
	"2027-02-15": "Washington's Birthday",
	"2027-03-26": "Good Friday",
	"2027-05-31": "Memorial Day",
	"2027-06-18": "Juneteenth (observed)",
	"2027-07-05": "Independence Day (observed)",
	"2027-09-06": "Labor Day",
	"2027-11-25": "Thanksgiving Day",
	"2027-12-24": "Christmas Day (observed)",

	"2028-01-17": "Martin Luther King, Jr. Day",
	"2028-02-21": "Washington's Birthday",
	"2028-04-14": "Good Friday",
	"2028-05-29": "Memorial Day",
	"2028-06-19": "Juneteenth",
	"2028-07-04": "Independence Day",
	"2028-09-04": "Labor Day",
	"2028-11-23": "Thanksgiving Day",
	"2028-12-25": "Christmas Day",
}

// CloseInstant returns 16:00 America/New_York on date (YYYY-MM-DD), in UTC:
// 20:00Z under daylight-saving time, 21:00Z otherwise. It is the ticker-data
// sort key of that trading day. It does not check that date is a trading day.
func CloseInstant(date string) (time.Time, error) {
	d, err := time.Parse(DateLayout, date)
	if err != nil {
		return time.Time{}, fmt.Errorf("close instant of %q: not a YYYY-MM-DD date", date)
	}
	y, m, day := d.Date()
	return time.Date(y, m, day, closeHour, 0, 0, 0, newYork()).UTC(), nil
}

// The years nyseHolidays covers.
const (
	CalendarFirstYear = 2024
	CalendarLastYear  = 2028
)

// InCalendar reports whether date (YYYY-MM-DD) falls in a year whose NYSE
// holidays this package knows (CalendarFirstYear–CalendarLastYear); outside
// them IsTradingDay knows only the weekends.
func InCalendar(date string) bool {
	d, err := time.Parse(DateLayout, date)
	return err == nil && d.Year() >= CalendarFirstYear && d.Year() <= CalendarLastYear
}

// IsTradingDay reports whether date (YYYY-MM-DD) is a weekday on which the
// NYSE is open for the full or a shortened session. Malformed dates are not
// trading days.
func IsTradingDay(date string) bool {
	d, err := time.Parse(DateLayout, date)
	if err != nil {
		return false
	}
	return isTradingDay(d)
}

func isTradingDay(d time.Time) bool {
	if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return false
	}
	_, holiday := nyseHolidays[d.Format(DateLayout)]
	return !holiday
}

// LastTradingDay returns the latest NYSE trading date (YYYY-MM-DD) whose 16:00
// New York close is at or before now: the date of the newest complete daily
// bar. Weekends and the NYSE full-day holidays of 2024–2028 are skipped.
func LastTradingDay(now time.Time) string {
	ny := now.In(newYork())
	y, m, d := ny.Date()
	// Calendar arithmetic on a UTC midnight avoids DST surprises in AddDate.
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	for {
		if isTradingDay(day) {
			closeAt := time.Date(day.Year(), day.Month(), day.Day(), closeHour, 0, 0, 0, newYork())
			if !closeAt.After(now) {
				return day.Format(DateLayout)
			}
		}
		day = day.AddDate(0, 0, -1)
	}
}

// TradingDays returns the NYSE trading dates from one date to another
// (YYYY-MM-DD, both included), ascending; nil when to is before from or a
// date does not parse.
func TradingDays(from, to string) []string {
	f, err1 := time.Parse(DateLayout, from)
	t, err2 := time.Parse(DateLayout, to)
	if err1 != nil || err2 != nil || t.Before(f) {
		return nil
	}
	var out []string
	for d := f; !d.After(t); d = d.AddDate(0, 0, 1) {
		if isTradingDay(d) {
			out = append(out, d.Format(DateLayout))
		}
	}
	return out
}

// AddDays returns date (YYYY-MM-DD) moved by n calendar days, or "" when it
// does not parse.
func AddDays(date string, n int) string {
	d, err := time.Parse(DateLayout, date)
	if err != nil {
		return ""
	}
	return d.AddDate(0, 0, n).Format(DateLayout)
}

// PreviousTradingDay returns the trading date before date (YYYY-MM-DD), or ""
// when it does not parse.
func PreviousTradingDay(date string) string {
	d, err := time.Parse(DateLayout, date)
	if err != nil {
		return ""
	}
	for {
		d = d.AddDate(0, 0, -1)
		if isTradingDay(d) {
			return d.Format(DateLayout)
		}
	}
}

// SessionStart returns midnight America/New_York of date (YYYY-MM-DD): the
// instant a per-ticker daily bar's t names.
func SessionStart(date string) (time.Time, error) {
	d, err := time.Parse(DateLayout, date)
	if err != nil {
		return time.Time{}, fmt.Errorf("session start of %q: not a YYYY-MM-DD date", date)
	}
	y, m, day := d.Date()
	return time.Date(y, m, day, 0, 0, 0, 0, newYork()), nil
}
