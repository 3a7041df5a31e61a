package marketdata

import "time"

// The NYSE's rules, as the exchange applies them since CalendarFirstYear.
// Every function here takes a day as a UTC midnight (see civilDay).

// CalendarFirstYear is the first year the calendar knows. From 2000 on, the
// rules below and the special closures list every full-day closure of the
// NYSE; before it other rules applied (Martin Luther King, Jr. Day only from
// 1998) and there were closures this package does not list (Nixon's funeral,
// 1994-04-27; Hurricane Gloria, 1985-09-27), so an earlier date is outside the
// calendar: not a trading day, and no walk through the calendar goes there.
// There is no last year.
const CalendarFirstYear = 2000

// specialClosures are the NYSE's full-day closures since CalendarFirstYear
// that no rule gives, with the reason. Add a new one here when the exchange
// announces it (a closure learnt only at run time goes to
// Calendar.WithClosures instead).
var specialClosures = []struct {
	date   int // yyyymmdd
	reason string
}{
	{2001_09_11, "September 11 attacks"},
	{2001_09_12, "September 11 attacks"},
	{2001_09_13, "September 11 attacks"},
	{2001_09_14, "September 11 attacks"},
	{2004_06_11, "National Day of Mourning for President Reagan"},
	{2007_01_02, "National Day of Mourning for President Ford"},
	{2012_10_29, "Hurricane Sandy"},
	{2012_10_30, "Hurricane Sandy"},
	{2018_12_05, "National Day of Mourning for President George H. W. Bush"},
	{2025_01_09, "National Day of Mourning for President Carter"},
}

// specialEarlyCloses are the 13:00 closes since CalendarFirstYear that no rule
// gives: the Friday after a Thursday Christmas in 2003 (not repeated in 2008,
// 2014 or 2025).
var specialEarlyCloses = []int{2003_12_26}

// ruleHoliday returns the name of the NYSE holiday observed on day by rule,
// or "" if none is. day is a weekday of CalendarFirstYear or later.
func ruleHoliday(day time.Time) string {
	y, m, d := day.Date()
	wd := day.Weekday()
	switch m {
	case time.January:
		if observes(day, y, time.January, 1) {
			return observedName("New Year's Day", d != 1)
		}
		if wd == time.Monday && nth(d) == 3 {
			return "Martin Luther King, Jr. Day"
		}
	case time.February:
		if wd == time.Monday && nth(d) == 3 {
			return "Washington's Birthday"
		}
	case time.March, time.April:
		if wd == time.Friday && day.Equal(easter(y).AddDate(0, 0, -2)) {
			return "Good Friday"
		}
	case time.May:
		if wd == time.Monday && d+7 > 31 {
			return "Memorial Day"
		}
	case time.June:
		if y >= 2022 && observes(day, y, time.June, 19) {
			return observedName("Juneteenth", d != 19)
		}
	case time.July:
		if observes(day, y, time.July, 4) {
			return observedName("Independence Day", d != 4)
		}
	case time.September:
		if wd == time.Monday && nth(d) == 1 {
			return "Labor Day"
		}
	case time.November:
		if wd == time.Thursday && nth(d) == 4 {
			return "Thanksgiving Day"
		}
	case time.December:
		if observes(day, y, time.December, 25) {
			return observedName("Christmas Day", d != 25)
		}
		if observes(day, y+1, time.January, 1) {
			return observedName("New Year's Day", true)
		}
	}
	return ""
}

// nth is which occurrence of its weekday in the month the day of month d is
// (1 for the first seven days).
func nth(d int) int { return (d-1)/7 + 1 }

func observedName(name string, moved bool) string {
	if moved {
		return name + " (observed)"
	}
	return name
}

// observes reports whether day is the observed date of the holiday on
// month/dom of year. NYSE Rule 7.2: a holiday on a Sunday is observed the
// Monday after; one on a Saturday the Friday before, unless that Friday ends
// a monthly or yearly accounting period, in which case it is not observed. So
// New Year's Day on a Saturday is not observed on December 31 (2022, 2028),
// while Independence Day, Juneteenth and Christmas move to the Friday.
func observes(day time.Time, year int, month time.Month, dom int) bool {
	h := time.Date(year, month, dom, 0, 0, 0, 0, time.UTC)
	switch h.Weekday() {
	case time.Sunday:
		h = h.AddDate(0, 0, 1)
	case time.Saturday:
		friday := h.AddDate(0, 0, -1)
		if friday.Month() != h.Month() {
			return false // the Friday ends a month
		}
		h = friday
	}
	return day.Equal(h)
}

// easter returns Easter Sunday of year y in the Gregorian calendar (the
// anonymous Gregorian algorithm, also known as Meeus/Jones/Butcher).
func easter(y int) time.Time {
	a := y % 19
	b, c := y/100, y%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	dom := (h+l-7*m+114)%31 + 1
	return time.Date(y, time.Month(month), dom, 0, 0, 0, 0, time.UTC)
}

// specialClosure returns the reason of the special closure on key, or "".
func specialClosure(key int) string {
	for _, c := range specialClosures {
		if c.date == key {
			return c.reason
		}
	}
	return ""
}

// ruleEarlyClose reports whether the NYSE closes at 13:00 on day, a trading
// day of CalendarFirstYear or later: July 3 on a Monday, Tuesday or Thursday,
// and on a Wednesday from 2013 (before 2013 the Friday July 5 after a Thursday
// Independence Day closed early instead); the day after Thanksgiving; and
// Christmas Eve on a weekday (a Friday December 24 is the observed Christmas).
func ruleEarlyClose(day time.Time) bool {
	y, m, d := day.Date()
	wd := day.Weekday()
	switch {
	case m == time.July && d == 3:
		return wd != time.Wednesday || y >= 2013
	case m == time.July && d == 5:
		return wd == time.Friday && y < 2013
	case m == time.November && wd == time.Friday:
		return nth(d-1) == 4 // the day before is the fourth Thursday
	case m == time.December && d == 24:
		return true
	}
	for _, k := range specialEarlyCloses {
		if k == dayKey(day) {
			return true
		}
	}
	return false
}
