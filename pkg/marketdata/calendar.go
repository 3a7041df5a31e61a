package marketdata

import (
	"errors"
	"fmt"
	"maps"
	"time"
)

// closeHour is the regular NYSE close, 16:00 New York time, and
// earlyCloseHour the close of a shortened session (EarlyClose). CloseInstant
// and LastTradingDay use closeHour whatever the day: CloseInstant is a stable
// key for "the trading day", and waiting until 16:00 on an early-close day
// only delays by three hours the moment that day counts as complete.
const (
	closeHour      = 16
	earlyCloseHour = 13
)

// Calendar is the NYSE trading calendar from CalendarFirstYear on, with no
// last year: weekends, the holidays the exchange's rules give for any year,
// its special closures (days of mourning, storms, September 2001), and the
// closures given to WithClosures. Dates are YYYY-MM-DD New York trading
// dates.
//
// The zero value is the NYSE's calendar by rule, the one the package-level
// functions use; NYSE returns it. A Calendar is a value, safe for concurrent
// use, and never changes: WithClosures returns a new one.
type Calendar struct {
	closed map[int]string // closures given to WithClosures, by yyyymmdd
}

// Closure is a full-day closure of the exchange on a weekday.
type Closure struct {
	// Date is the closed day, YYYY-MM-DD.
	Date string
	// Reason is the holiday's name ("Good Friday", "Independence Day
	// (observed)") or why the exchange closed.
	Reason string
}

// NYSE returns the NYSE's calendar by rule (the zero Calendar).
func NYSE() Calendar { return Calendar{} }

// WithClosures returns c with the given days closed too: closures learnt at
// run time, such as a session that was never published. Each must be a
// weekday of the calendar's years with a reason; a day the rules already
// close keeps the rules' reason. It is an error, and c is unchanged, if one
// is not.
func (c Calendar) WithClosures(closures ...Closure) (Calendar, error) {
	out := Calendar{closed: make(map[int]string, len(c.closed)+len(closures))}
	maps.Copy(out.closed, c.closed)
	for _, cl := range closures {
		day, ok := civilDay(cl.Date)
		switch {
		case !ok:
			return c, fmt.Errorf("closure %q: not a YYYY-MM-DD date", cl.Date)
		case !inCalendar(day):
			return c, fmt.Errorf("closure %s: before %d, the calendar's first year", cl.Date, CalendarFirstYear)
		case isWeekend(day):
			return c, fmt.Errorf("closure %s: a %s, never a session", cl.Date, day.Weekday())
		case cl.Reason == "":
			return c, errors.New("closure " + cl.Date + ": no reason given")
		}
		out.closed[dayKey(day)] = cl.Reason
	}
	return out, nil
}

// IsTradingDay reports whether date is a weekday of the calendar's years on
// which the NYSE is open for the full or a shortened session. Malformed
// dates, and dates before CalendarFirstYear (whose closures this package does
// not know), are not trading days.
func (c Calendar) IsTradingDay(date string) bool {
	day, ok := civilDay(date)
	return ok && c.isTradingDay(day)
}

// Closed returns why the NYSE is closed on date, a weekday: the holiday's
// name or the closure's reason. It reports false for a trading day, a
// weekend, a malformed date or one before CalendarFirstYear.
func (c Calendar) Closed(date string) (reason string, closed bool) {
	day, ok := civilDay(date)
	if !ok || !inCalendar(day) || isWeekend(day) {
		return "", false
	}
	r := c.closure(day)
	return r, r != ""
}

// Closures returns the full-day closures of the weekdays of year, ascending:
// holidays, special closures and the closures given to WithClosures. It is
// nil for a year before CalendarFirstYear or after 9999.
func (c Calendar) Closures(year int) []Closure {
	if year < CalendarFirstYear || year > lastDay.Year() {
		return nil
	}
	var out []Closure
	for day := time.Date(year, time.January, 1, 0, 0, 0, 0, time.UTC); day.Year() == year; day = day.Add(24 * time.Hour) {
		if isWeekend(day) {
			continue
		}
		if r := c.closure(day); r != "" {
			out = append(out, Closure{Date: day.Format(DateLayout), Reason: r})
		}
	}
	return out
}

// EarlyClose reports whether date is a trading day whose session ends at
// 13:00 New York time: July 3 before a weekday Independence Day, the day
// after Thanksgiving, Christmas Eve on a weekday (and, once, 2003-12-26).
func (c Calendar) EarlyClose(date string) bool {
	day, ok := civilDay(date)
	return ok && c.isTradingDay(day) && ruleEarlyClose(day)
}

// SessionClose returns the instant the session of date ends, in UTC: 16:00
// New York, or 13:00 on an early close (the t of a grouped-daily row). It is
// an error if date is malformed or not a trading day. CloseInstant, not this,
// is the key of a trading day's stored row.
func (c Calendar) SessionClose(date string) (time.Time, error) {
	day, ok := civilDay(date)
	if !ok {
		return time.Time{}, fmt.Errorf("session close of %q: not a YYYY-MM-DD date", date)
	}
	if !c.isTradingDay(day) {
		return time.Time{}, fmt.Errorf("session close of %s: not a trading day", date)
	}
	hour := closeHour
	if ruleEarlyClose(day) {
		hour = earlyCloseHour
	}
	y, m, d := day.Date()
	return time.Date(y, m, d, hour, 0, 0, 0, newYork()).UTC(), nil
}

// LastTradingDay returns the latest trading date whose 16:00 New York close
// is at or before now: the date of the newest complete daily bar. It is ""
// when now is before the first close of CalendarFirstYear.
func (c Calendar) LastTradingDay(now time.Time) string {
	y, m, d := now.In(newYork()).Date()
	// Calendar arithmetic on a UTC midnight avoids DST surprises.
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if day.After(lastDay) {
		day = lastDay
	}
	for ; !day.Before(firstDay); day = day.Add(-24 * time.Hour) {
		if !c.isTradingDay(day) {
			continue
		}
		y, m, d := day.Date()
		if closeAt := time.Date(y, m, d, closeHour, 0, 0, 0, newYork()); !closeAt.After(now) {
			return day.Format(DateLayout)
		}
	}
	return ""
}

// PreviousTradingDay returns the trading date before date, or "" when date
// is malformed or the calendar has no trading day before it.
func (c Calendar) PreviousTradingDay(date string) string {
	day, ok := civilDay(date)
	if !ok {
		return ""
	}
	for day = day.Add(-24 * time.Hour); !day.Before(firstDay); day = day.Add(-24 * time.Hour) {
		if c.isTradingDay(day) {
			return day.Format(DateLayout)
		}
	}
	return ""
}

// NextTradingDay returns the trading date after date, or "" when date is
// malformed, before CalendarFirstYear (the calendar does not know what
// follows it), or the last trading day before year 10000.
func (c Calendar) NextTradingDay(date string) string {
	day, ok := civilDay(date)
	if !ok || !inCalendar(day) {
		return ""
	}
	for day = day.Add(24 * time.Hour); !day.After(lastDay); day = day.Add(24 * time.Hour) {
		if c.isTradingDay(day) {
			return day.Format(DateLayout)
		}
	}
	return ""
}

// TradingDays returns the trading dates from one date to another (both
// included), ascending. Dates before CalendarFirstYear are left out; the
// result is nil when there is none, when to is before from or a date is
// malformed.
func (c Calendar) TradingDays(from, to string) []string {
	f, ok1 := civilDay(from)
	t, ok2 := civilDay(to)
	if !ok1 || !ok2 || t.Before(f) {
		return nil
	}
	var out []string
	if f.Before(firstDay) {
		f = firstDay
	}
	for d := f; !d.After(t); d = d.Add(24 * time.Hour) {
		if c.isTradingDay(d) {
			out = append(out, d.Format(DateLayout))
		}
	}
	return out
}

func (c Calendar) isTradingDay(day time.Time) bool {
	return inCalendar(day) && !isWeekend(day) && c.closure(day) == ""
}

// closure returns why the exchange is closed on day, a weekday of the
// calendar's years, or "" if it is open.
func (c Calendar) closure(day time.Time) string {
	if name := ruleHoliday(day); name != "" {
		return name
	}
	k := dayKey(day)
	if r := specialClosure(k); r != "" {
		return r
	}
	return c.closed[k]
}

// The calendar's bounds, as UTC midnights: the first day of
// CalendarFirstYear and the last day a YYYY-MM-DD date can name.
var (
	firstDay = time.Date(CalendarFirstYear, time.January, 1, 0, 0, 0, 0, time.UTC)
	lastDay  = time.Date(9999, time.December, 31, 0, 0, 0, 0, time.UTC)
)

func inCalendar(day time.Time) bool { return !day.Before(firstDay) && !day.After(lastDay) }

func isWeekend(day time.Time) bool {
	wd := day.Weekday()
	return wd == time.Saturday || wd == time.Sunday
}

// civilDay returns date (YYYY-MM-DD) as a UTC midnight, the form the
// calendar computes on.
func civilDay(date string) (time.Time, bool) {
	y, m, d, ok := parseDate(date)
	if !ok {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC), true
}

// dayKey is day as the integer yyyymmdd.
func dayKey(day time.Time) int {
	y, m, d := day.Date()
	return y*10000 + int(m)*100 + d
}

// The NYSE calendar by rule, for the package-level functions.
var nyse Calendar

// InCalendar reports whether date (YYYY-MM-DD) is a date the calendar knows:
// one of CalendarFirstYear or later.
func InCalendar(date string) bool {
	day, ok := civilDay(date)
	return ok && inCalendar(day)
}

// IsTradingDay is NYSE().IsTradingDay.
func IsTradingDay(date string) bool { return nyse.IsTradingDay(date) }

// Closures is NYSE().Closures: the NYSE's full-day closures of year.
func Closures(year int) []Closure { return nyse.Closures(year) }

// EarlyClose is NYSE().EarlyClose.
func EarlyClose(date string) bool { return nyse.EarlyClose(date) }

// SessionClose is NYSE().SessionClose.
func SessionClose(date string) (time.Time, error) { return nyse.SessionClose(date) }

// LastTradingDay is NYSE().LastTradingDay: the date of the newest complete
// daily bar at now.
func LastTradingDay(now time.Time) string { return nyse.LastTradingDay(now) }

// TradingDays is NYSE().TradingDays.
func TradingDays(from, to string) []string { return nyse.TradingDays(from, to) }

// PreviousTradingDay is NYSE().PreviousTradingDay.
func PreviousTradingDay(date string) string { return nyse.PreviousTradingDay(date) }

// NextTradingDay is NYSE().NextTradingDay.
func NextTradingDay(date string) string { return nyse.NextTradingDay(date) }

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

// AddDays returns date (YYYY-MM-DD) moved by n calendar days, or "" when it
// does not parse.
func AddDays(date string, n int) string {
	d, err := time.Parse(DateLayout, date)
	if err != nil {
		return ""
	}
	return d.AddDate(0, 0, n).Format(DateLayout)
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
