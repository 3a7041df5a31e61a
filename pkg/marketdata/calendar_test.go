package marketdata_test

import (
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

func TestCloseInstant(t *testing.T) {
	tests := []struct{ date, want string }{
		{"2026-03-06", "2026-03-06T21:00:00Z"}, // EST, UTC-5
		{"2026-03-09", "2026-03-09T20:00:00Z"}, // EDT, UTC-4 (DST began 2026-03-08)
		{"2026-03-08", "2026-03-08T20:00:00Z"}, // the switch day itself: 16:00 is after 02:00, so EDT
		{"2026-10-30", "2026-10-30T20:00:00Z"}, // EDT
		{"2026-11-01", "2026-11-01T21:00:00Z"}, // the switch back: EST by 16:00
		{"2026-11-02", "2026-11-02T21:00:00Z"}, // EST
		{"2026-07-02", "2026-07-02T20:00:00Z"},
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := marketdata.LastTradingDay(utc(t, tt.now)); got != tt.want {
				t.Errorf("LastTradingDay(%s) = %s, want %s", tt.now, got, tt.want)
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
		{"not-a-date", false},
	}
	for _, tt := range tests {
		if got := marketdata.IsTradingDay(tt.date); got != tt.want {
			t.Errorf("IsTradingDay(%s) = %v, want %v", tt.date, got, tt.want)
		}
	}
}

func TestInCalendar(t *testing.T) {
	for date, want := range map[string]bool{"2024-01-02": true, "2028-12-29": true, "2023-12-29": false, "2029-01-02": false, "2026-13-01": false} {
		if got := marketdata.InCalendar(date); got != want {
			t.Errorf("InCalendar(%s) = %v, want %v", date, got, want)
		}
	}
}
