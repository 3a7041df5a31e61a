package marketdata

import (
	"testing"
	"time"
)

// Easter by the computus against published dates: the extremes (March 22 in
// 1818 and 2285, April 25 in 1943 and 2038, the dates the tables of Easter
// name as the earliest and latest possible) and recent years (Good Friday two
// days before each is in the NYSE's published lists).
func TestEaster(t *testing.T) {
	for year, want := range map[int]string{
		1818: "1818-03-22", 2285: "2285-03-22", 1943: "1943-04-25", 2038: "2038-04-25",
		2000: "2000-04-23", 2008: "2008-03-23", 2011: "2011-04-24", 2019: "2019-04-21",
		2024: "2024-03-31", 2025: "2025-04-20", 2026: "2026-04-05", 2027: "2027-03-28", 2028: "2028-04-16",
	} {
		if got := easter(year).Format(DateLayout); got != want {
			t.Errorf("easter(%d) = %s, want %s", year, got, want)
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
