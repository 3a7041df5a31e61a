package marketdata_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
)

func utc(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// nysePublished are the NYSE's full-day closures 2024–2028 as the exchange
// published them: "NYSE Group Announces 2026, 2027 and 2028 Holiday and Early
// Closings Calendar" (2025-12-23; 29 holidays, "Because the holiday falls on
// Saturday, January 1, 2028, no New Year's Day holiday is observed"), the
// releases of 2022-12-21 (2023–2025) and 2021-12-27 (2022–2024), and the
// closure for the National Day of Mourning for President Carter
// (2025-01-09). The names are the NYSE's. This was the package's hand-typed
// table before the calendar was derived by rule; it is now the reference the
// rules must reproduce exactly.
var nysePublished = map[string]string{
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

// The rules reproduce the NYSE's published list of 2024–2028 exactly: every
// date, every name, nothing more.
func TestClosuresMatchNYSEPublished2024To2028(t *testing.T) {
	for year := 2024; year <= 2028; year++ {
		want := map[string]string{}
		for date, name := range nysePublished {
			if strings.HasPrefix(date, time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).Format("2006-")) {
				want[date] = name
			}
		}
		got := map[string]string{}
		for _, c := range marketdata.Closures(year) {
			got[c.Date] = c.Reason
		}
		if !maps.Equal(got, want) {
			t.Errorf("%d:\n got %v\nwant %v", year, got, want)
		}
	}
}

// publishedClosures are the full-day closures of other years, as published:
// 2018–2020 from the NYSE's release of 2018 (reproduced at
// paulmaior.ro/2018/09/stock-market-and-bank-holidays-for-2018-2019-and-2020),
// 2021–2023 from its releases of 2020-12-28 and 2021-12-27 (mondovisione.com),
// 2011–2016 from wallstreetdiary.blogspot.com/2013/03/nyse-holiday-schedule.html
// (a secondary copy of the NYSE's lists), and the special closures the
// NYSE announced afterwards: Hurricane Sandy (2012-10-29/30), the day of
// mourning for President George H. W. Bush (2018-12-05). New Year's Day 2011
// fell on a Saturday and was not observed ("Friday, December 31, 2010 is the
// end of both a monthly and yearly accounting period; therefore the exchanges
// will be open", NYSE, December 2010), nor was New Year's Day 2022 ("No holiday
// observed, pursuant to NYSE Rule 7.2").
var publishedClosures = map[int][]string{
	2011: {"01-17", "02-21", "04-22", "05-30", "07-04", "09-05", "11-24", "12-26"},
	2012: {"01-02", "01-16", "02-20", "04-06", "05-28", "07-04", "09-03", "10-29", "10-30", "11-22", "12-25"},
	2013: {"01-01", "01-21", "02-18", "03-29", "05-27", "07-04", "09-02", "11-28", "12-25"},
	2014: {"01-01", "01-20", "02-17", "04-18", "05-26", "07-04", "09-01", "11-27", "12-25"},
	2015: {"01-01", "01-19", "02-16", "04-03", "05-25", "07-03", "09-07", "11-26", "12-25"},
	2016: {"01-01", "01-18", "02-15", "03-25", "05-30", "07-04", "09-05", "11-24", "12-26"},
	2018: {"01-01", "01-15", "02-19", "03-30", "05-28", "07-04", "09-03", "11-22", "12-05", "12-25"},
	2019: {"01-01", "01-21", "02-18", "04-19", "05-27", "07-04", "09-02", "11-28", "12-25"},
	2020: {"01-01", "01-20", "02-17", "04-10", "05-25", "07-03", "09-07", "11-26", "12-25"},
	2021: {"01-01", "01-18", "02-15", "04-02", "05-31", "07-05", "09-06", "11-25", "12-24"},
	2022: {"01-17", "02-21", "04-15", "05-30", "06-20", "07-04", "09-05", "11-24", "12-26"},
	2023: {"01-02", "01-16", "02-20", "04-07", "05-29", "06-19", "07-04", "09-04", "11-23", "12-25"},
}

func TestClosuresMatchPublishedLists(t *testing.T) {
	for year, days := range publishedClosures {
		var got []string
		for _, c := range marketdata.Closures(year) {
			got = append(got, c.Date[5:])
		}
		if !slices.Equal(got, days) {
			t.Errorf("%d:\n got %v\nwant %v", year, got, days)
		}
	}
}

// Days the sources above, and the NYSE's announcements, name one by one.
func TestNamedDays(t *testing.T) {
	tests := []struct {
		date   string
		open   bool
		reason string // when closed, the start of the reason
	}{
		{"2010-12-31", true, ""}, // New Year's Day 2011 on a Saturday: not observed
		{"2021-12-31", true, ""}, // New Year's Day 2022 on a Saturday: not observed
		{"2027-12-31", true, ""}, // New Year's Day 2028 on a Saturday: not observed
		{"2023-01-02", false, "New Year's Day (observed)"},
		{"2021-06-18", true, ""}, // Juneteenth became a federal holiday on 2021-06-17; the markets stayed open
		{"2022-06-20", false, "Juneteenth (observed)"},
		{"2027-06-18", false, "Juneteenth (observed)"},
		{"2020-07-03", false, "Independence Day (observed)"},
		{"2021-12-24", false, "Christmas Day (observed)"},
		{"2001-09-10", true, ""},
		{"2001-09-11", false, "September 11"},
		{"2001-09-14", false, "September 11"},
		{"2001-09-17", true, ""}, // the market reopened on the Monday
		{"2004-06-11", false, "National Day of Mourning for President Reagan"},
		{"2007-01-02", false, "National Day of Mourning for President Ford"},
		{"2012-10-29", false, "Hurricane Sandy"},
		{"2012-10-30", false, "Hurricane Sandy"},
		{"2012-10-31", true, ""},
		{"2018-12-05", false, "National Day of Mourning for President George H. W. Bush"},
		{"2025-01-09", false, "National Day of Mourning for President Carter"},
		{"2025-12-26", true, ""}, // the federal government closed; the NYSE did not
		{"2000-01-03", true, ""}, // the calendar's first session
		{"2000-04-21", false, "Good Friday"},
	}
	for _, tt := range tests {
		reason, closed := marketdata.NYSE().Closed(tt.date)
		if got := marketdata.IsTradingDay(tt.date); got != tt.open || closed == tt.open {
			t.Errorf("%s: IsTradingDay %v, Closed %v; want open %v", tt.date, got, closed, tt.open)
		}
		if !strings.HasPrefix(reason, tt.reason) {
			t.Errorf("%s: closed for %q, want %q", tt.date, reason, tt.reason)
		}
	}
}

// publishedEarlyCloses are the 13:00 closes the NYSE published: its releases
// of 2018 (2018–2020), 2020-12-28 (2021–2023), 2022-12-21 (2024, 2025) and
// 2025-12-23 (2026–2028; Christmas Eve 2026 is the footnote on "Friday,
// December 25"); 2015 from the exchanges' list reproduced at
// usps-holidays.com/2014/12/2015-stock-market-holidays-bonds.html.
var publishedEarlyCloses = map[int][]string{
	2015: {"11-27", "12-24"},
	2018: {"07-03", "11-23", "12-24"},
	2019: {"07-03", "11-29", "12-24"},
	2020: {"11-27", "12-24"},
	2021: {"11-26"},
	2022: {"11-25"},
	2023: {"07-03", "11-24"},
	2024: {"07-03", "11-29", "12-24"},
	2025: {"07-03", "11-28", "12-24"},
	2026: {"11-27", "12-24"},
	2027: {"11-26"},
	2028: {"07-03", "11-24"},
}

func TestEarlyClosesMatchPublishedLists(t *testing.T) {
	for year, days := range publishedEarlyCloses {
		var got []string
		for day := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC); day.Year() == year; day = day.AddDate(0, 0, 1) {
			if d := day.Format(time.DateOnly); marketdata.EarlyClose(d) {
				got = append(got, d[5:])
			}
		}
		if !slices.Equal(got, days) {
			t.Errorf("%d: early closes %v, want %v", year, got, days)
		}
	}
	for _, d := range []string{"2026-11-26", "2026-11-28", "bad", "1999-11-26"} {
		if marketdata.EarlyClose(d) {
			t.Errorf("EarlyClose(%s) = true on a day without a session", d)
		}
	}
}

// Early closes that the rule changed or no rule gives, as the NYSE calendar
// of pandas_market_calendars documents them (from the exchange's list of
// closings): before 2013 a Thursday Independence Day closed the Friday after
// early, not the Wednesday before (2002); in 2013 the Wednesday July 3 closed
// early and the Friday did not; the Friday after a Thursday Christmas closed
// early in 2003, but not in 2008 or 2014; nor in 2025, when the federal
// government closed on December 26 but the NYSE said it "will be a regular
// full trading day" (its spokespeople, 2025-12-19).
func TestEarlyClosesTheRulesChanged(t *testing.T) {
	for date, want := range map[string]bool{
		"2002-07-03": false, "2002-07-05": true,
		"2013-07-03": true, "2013-07-05": false,
		"2003-12-26": true, "2008-12-26": false, "2014-12-26": false, "2025-12-26": false,
	} {
		if got := marketdata.EarlyClose(date); got != want {
			t.Errorf("EarlyClose(%s) = %v, want %v", date, got, want)
		}
	}
}

func TestSessionClose(t *testing.T) {
	tests := []struct{ date, want string }{
		{"2026-11-27", "2026-11-27T18:00:00Z"}, // day after Thanksgiving: 13:00 EST
		{"2025-07-03", "2025-07-03T17:00:00Z"}, // July 3: 13:00 EDT
		{"2026-11-25", "2026-11-25T21:00:00Z"}, // a full session: 16:00 EST
		{"2026-07-02", "2026-07-02T20:00:00Z"}, // July 3 2026 is the observed holiday: July 2 is a full session
	}
	for _, tt := range tests {
		got, err := marketdata.SessionClose(tt.date)
		if err != nil || got.Format(time.RFC3339) != tt.want || got.Location() != time.UTC {
			t.Errorf("SessionClose(%s) = %v, %v; want %s", tt.date, got, err, tt.want)
		}
	}
	for _, bad := range []string{"2026-11-26", "2026-11-28", "2026-02-30", "1999-12-30"} {
		if _, err := marketdata.SessionClose(bad); err == nil {
			t.Errorf("SessionClose(%s): nil error", bad)
		}
	}
}

func TestCloseInstant(t *testing.T) {
	tests := []struct{ date, want string }{
		{"2026-03-06", "2026-03-06T21:00:00Z"}, // EST, UTC-5
		{"2026-03-09", "2026-03-09T20:00:00Z"}, // EDT, UTC-4 (DST began 2026-03-08)
		{"2026-03-08", "2026-03-08T20:00:00Z"}, // the switch day itself: 16:00 is after 02:00, so EDT
		{"2026-10-30", "2026-10-30T20:00:00Z"}, // EDT
		{"2026-11-01", "2026-11-01T21:00:00Z"}, // the switch back: EST by 16:00
		{"2026-11-02", "2026-11-02T21:00:00Z"}, // EST
		{"2026-07-02", "2026-07-02T20:00:00Z"},
		{"2026-11-27", "2026-11-27T21:00:00Z"}, // an early close keeps the 16:00 key
	}
	for _, tt := range tests {
		got, err := marketdata.CloseInstant(tt.date)
		if err != nil {
			t.Fatalf("CloseInstant(%s): %v", tt.date, err)
		}
		if got.Location() != time.UTC {
			t.Errorf("CloseInstant(%s) location %v, want UTC", tt.date, got.Location())
		}
		if s := got.Format(time.RFC3339); s != tt.want {
			t.Errorf("CloseInstant(%s) = %s, want %s", tt.date, s, tt.want)
		}
	}
	for _, bad := range []string{"", "2026-13-01", "2026-02-30", "26-03-06", "2026-03-06T00:00:00Z"} {
		if _, err := marketdata.CloseInstant(bad); err == nil {
			t.Errorf("CloseInstant(%q): nil error", bad)
		}
	}
}

func TestLastTradingDay(t *testing.T) {
	tests := []struct {
		name, now, want string
	}{
		{"Thanksgiving 2026 afternoon", "2026-11-26T22:00:00Z", "2026-11-25"},
		{"day after Thanksgiving after close", "2026-11-27T21:00:00Z", "2026-11-27"},
		{"Good Friday 2026 evening", "2026-04-03T23:00:00Z", "2026-04-02"},
		{"Monday after Good Friday before close", "2026-04-06T19:59:59Z", "2026-04-02"},
		{"July 4 2026 (Saturday), observed Friday July 3", "2026-07-04T16:00:00Z", "2026-07-02"},
		{"Friday July 3 2026 after 16:00", "2026-07-03T21:00:00Z", "2026-07-02"},
		{"Saturday", "2026-11-28T15:00:00Z", "2026-11-27"},
		{"Sunday", "2026-11-29T15:00:00Z", "2026-11-27"},
		{"Monday 15:59 EST", "2026-11-30T20:59:59Z", "2026-11-27"},
		{"Monday 16:00 EST exactly", "2026-11-30T21:00:00Z", "2026-11-30"},
		{"Monday after midnight UTC is still Monday evening in New York", "2026-12-01T03:00:00Z", "2026-11-30"},
		{"DST spring: Monday 15:59 EDT", "2026-03-09T19:59:00Z", "2026-03-06"},
		{"DST spring: Monday 16:00 EDT", "2026-03-09T20:00:00Z", "2026-03-09"},
		{"DST spring: the Sunday of the switch", "2026-03-08T12:00:00Z", "2026-03-06"},
		{"DST autumn: Monday 15:30 EST (20:30Z would be after close under EDT)", "2026-11-02T20:30:00Z", "2026-10-30"},
		{"DST autumn: Monday 16:00 EST", "2026-11-02T21:00:00Z", "2026-11-02"},
		{"Carter day of mourning 2025", "2025-01-09T22:00:00Z", "2025-01-08"},
		{"New Year 2028 on Saturday is not observed on Friday 2027-12-31", "2028-01-01T12:00:00Z", "2027-12-31"},
		{"Christmas 2027 observed Friday 2027-12-24", "2027-12-26T12:00:00Z", "2027-12-23"},
		{"New Year's Day 2026 then Friday", "2026-01-02T12:00:00Z", "2025-12-31"},
		{"scheduler run Mon-Fri 21:30 New York", "2026-11-24T02:30:00Z", "2026-11-23"},
		{"past the old table: New Year's Day 2029, a Monday", "2029-01-01T23:00:00Z", "2028-12-29"},
		{"Independence Day 2032 on a Sunday, observed Monday", "2032-07-05T23:00:00Z", "2032-07-02"},
		{"Sandy 2012", "2012-10-31T12:00:00Z", "2012-10-26"},
		{"September 2001", "2001-09-16T12:00:00Z", "2001-09-10"},
		{"the calendar's first close", "2000-01-03T21:00:00Z", "2000-01-03"},
		{"before it: unknown", "2000-01-03T20:59:59Z", ""},
		{"long before it", "1987-10-19T22:00:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := marketdata.LastTradingDay(utc(t, tt.now)); got != tt.want {
				t.Errorf("LastTradingDay(%s) = %q, want %q", tt.now, got, tt.want)
			}
		})
	}
}

func TestIsTradingDay(t *testing.T) {
	tests := []struct {
		date string
		want bool
	}{
		{"2026-11-26", false}, // Thanksgiving
		{"2026-11-27", true},  // early close, still a trading day
		{"2026-04-03", false}, // Good Friday
		{"2026-07-03", false}, // Independence Day observed
		{"2026-06-19", false}, // Juneteenth
		{"2026-03-07", false}, // Saturday
		{"2026-03-08", false}, // Sunday
		{"2026-03-09", true},
		{"2027-12-31", true},
		{"2028-11-23", false},
		{"2029-11-22", false}, // Thanksgiving 2029, beyond the old table's end
		{"2029-12-31", true},
		{"2033-12-26", false}, // Christmas 2033 on a Sunday, observed Monday
		{"2032-12-31", true},  // New Year's Day 2033 on a Saturday: not observed
		{"2100-12-24", false}, // Christmas 2100 on a Saturday, observed Friday
		{"9999-12-31", true},  // a Friday, the last day a date can name
		{"1999-12-30", false}, // before the calendar
		{"not-a-date", false},
		{"2026-02-29", false},
	}
	for _, tt := range tests {
		if got := marketdata.IsTradingDay(tt.date); got != tt.want {
			t.Errorf("IsTradingDay(%s) = %v, want %v", tt.date, got, tt.want)
		}
	}
}

func TestInCalendar(t *testing.T) {
	for date, want := range map[string]bool{
		"2000-01-01": true, "2024-01-02": true, "2028-12-29": true, "2029-01-02": true, "2500-06-01": true, "9999-12-31": true,
		"1999-12-31": false, "2026-13-01": false, "": false,
	} {
		if got := marketdata.InCalendar(date); got != want {
			t.Errorf("InCalendar(%s) = %v, want %v", date, got, want)
		}
	}
}

func TestNextAndPreviousTradingDay(t *testing.T) {
	tests := []struct{ date, prev, next string }{
		{"2026-11-26", "2026-11-25", "2026-11-27"}, // from a holiday
		{"2026-11-27", "2026-11-25", "2026-11-30"},
		{"2001-09-11", "2001-09-10", "2001-09-17"},
		{"2027-12-31", "2027-12-30", "2028-01-03"},
		{"2028-12-29", "2028-12-28", "2029-01-02"}, // over New Year's Day 2029
		{"2000-01-03", "", "2000-01-04"},           // nothing known before the first session
		{"1999-12-31", "", ""},                     // outside the calendar
		{"9999-12-31", "9999-12-30", ""},           // nothing a date can name after it
		{"bad", "", ""},
	}
	for _, tt := range tests {
		if got := marketdata.PreviousTradingDay(tt.date); got != tt.prev {
			t.Errorf("PreviousTradingDay(%s) = %q, want %q", tt.date, got, tt.prev)
		}
		if got := marketdata.NextTradingDay(tt.date); got != tt.next {
			t.Errorf("NextTradingDay(%s) = %q, want %q", tt.date, got, tt.next)
		}
	}
	if got := marketdata.TradingDays("1999-12-28", "2000-01-04"); !slices.Equal(got, []string{"2000-01-03", "2000-01-04"}) {
		t.Errorf("TradingDays across the calendar's start = %v", got)
	}
}

// A closure learnt at run time closes that day in the calendar built with it,
// and nowhere else.
func TestWithClosures(t *testing.T) {
	base := marketdata.NYSE()
	cal, err := base.WithClosures(marketdata.Closure{Date: "2026-11-24", Reason: "no session published"})
	if err != nil {
		t.Fatal(err)
	}
	if cal.IsTradingDay("2026-11-24") || !base.IsTradingDay("2026-11-24") || !marketdata.IsTradingDay("2026-11-24") {
		t.Error("2026-11-24 should be closed in the new calendar only")
	}
	if r, ok := cal.Closed("2026-11-24"); !ok || r != "no session published" {
		t.Errorf("Closed = %q, %v", r, ok)
	}
	if got := cal.TradingDays("2026-11-20", "2026-11-30"); !slices.Equal(got, []string{"2026-11-20", "2026-11-23", "2026-11-25", "2026-11-27", "2026-11-30"}) {
		t.Errorf("TradingDays = %v", got)
	}
	if p, n := cal.PreviousTradingDay("2026-11-25"), cal.NextTradingDay("2026-11-23"); p != "2026-11-23" || n != "2026-11-25" {
		t.Errorf("previous %s, next %s", p, n)
	}
	if got := cal.LastTradingDay(utc(t, "2026-11-25T02:00:00Z")); got != "2026-11-23" {
		t.Errorf("LastTradingDay on the evening of the closure = %s", got)
	}
	if cal.EarlyClose("2026-11-24") {
		t.Error("a closed day has no early close")
	}
	if _, err := cal.SessionClose("2026-11-24"); err == nil {
		t.Error("SessionClose of a closed day: nil error")
	}

	// Closures accumulate; a day the rules close keeps the rules' reason.
	more, err := cal.WithClosures(marketdata.Closure{Date: "2031-03-05", Reason: "storm"}, marketdata.Closure{Date: "2026-11-26", Reason: "again"})
	if err != nil {
		t.Fatal(err)
	}
	if more.IsTradingDay("2026-11-24") || more.IsTradingDay("2031-03-05") || cal.IsTradingDay("2031-03-05") == false {
		t.Error("closures did not accumulate, or leaked into the calendar they were added to")
	}
	if r, _ := more.Closed("2026-11-26"); r != "Thanksgiving Day" {
		t.Errorf("Thanksgiving closed for %q", r)
	}
	got := more.Closures(2026)
	if len(got) != 11 || !slices.Contains(got, marketdata.Closure{Date: "2026-11-24", Reason: "no session published"}) {
		t.Errorf("Closures(2026) = %v", got)
	}

	for _, bad := range []marketdata.Closure{
		{Date: "2026-11-31", Reason: "x"},
		{Date: "2026-11-28", Reason: "x"}, // a Saturday
		{Date: "1999-06-01", Reason: "x"},
		{Date: "2026-11-24"},
	} {
		if _, err := base.WithClosures(marketdata.Closure{Date: "2026-11-23", Reason: "ok"}, bad); err == nil {
			t.Errorf("WithClosures(%+v): nil error", bad)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("WithClosures(%+v): %q is not one line", bad, err)
		}
	}
	if !base.IsTradingDay("2026-11-23") {
		t.Error("a refused WithClosures changed its receiver")
	}
}
