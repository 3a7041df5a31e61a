package marketdata_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/zsmseven/backend/pkg/marketdata"
)

// Epoch milliseconds of midnight America/New_York, computed outside this code
// with GNU date (`TZ=America/New_York date -d "2026-03-06 00:00" +%s`) and
// cross-checked with `date -u -d @<seconds>`.
const (
	midnightNY20260306 = 1772773200000 // Fri, EST: 05:00Z
	midnightNY20260308 = 1772946000000 // Sun, the DST switch: still EST at midnight, 05:00Z
	midnightNY20260309 = 1773028800000 // Mon, EDT: 04:00Z
	midnightNY20261030 = 1793332800000 // Fri, EDT: 04:00Z
	midnightNY20261101 = 1793505600000 // Sun, the switch back: still EDT at midnight, 04:00Z
	midnightNY20261102 = 1793595600000 // Mon, EST: 05:00Z
)

func TestTradingDateAcrossDST(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{midnightNY20260306, "2026-03-06"},
		{midnightNY20260308, "2026-03-08"},
		{midnightNY20260309, "2026-03-09"},
		{midnightNY20261030, "2026-10-30"},
		{midnightNY20261101, "2026-11-01"},
		{midnightNY20261102, "2026-11-02"},
		// One millisecond before midnight New York is still the previous day.
		{midnightNY20260309 - 1, "2026-03-08"},
		{midnightNY20261102 - 1, "2026-11-01"},
	}
	// The result must not depend on the process's zone: midnight New York is
	// 21:00 the previous evening in Los Angeles.
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Fatal(err)
	}
	for _, local := range []*time.Location{time.UTC, la} {
		saved := time.Local
		time.Local = local
		for _, tt := range tests {
			if got := marketdata.TradingDate(tt.ms); got != tt.want {
				t.Errorf("TZ=%s: TradingDate(%d) = %s, want %s", local, tt.ms, got, tt.want)
			}
		}
		time.Local = saved
	}
}

func bar(date string, close float64) marketdata.Bar {
	return marketdata.Bar{Date: date, Open: close, High: close, Low: close, Close: close}
}

func TestValidateAcceptsBarsStraddlingDST(t *testing.T) {
	ms := []int64{midnightNY20260306, midnightNY20260309, midnightNY20261030, midnightNY20261102}
	var bars []marketdata.Bar
	for i, m := range ms {
		b := bar(marketdata.TradingDate(m), 10+float64(i))
		b.Start = time.UnixMilli(m)
		bars = append(bars, b)
	}
	if err := marketdata.Validate(bars); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := []string{"2026-03-06", "2026-03-09", "2026-10-30", "2026-11-02"}
	for i, b := range bars {
		if b.Date != want[i] {
			t.Errorf("bar %d date %s, want %s", i, b.Date, want[i])
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		bars    []marketdata.Bar
		wantErr string // substring; empty means valid
	}{
		{"empty", nil, ""},
		{"one", []marketdata.Bar{bar("2026-03-06", 1)}, ""},
		{"ascending with gaps", []marketdata.Bar{bar("2026-03-06", 1), bar("2026-03-09", 2), bar("2026-03-10", 3)}, ""},
		{"duplicate date", []marketdata.Bar{bar("2026-03-06", 1), bar("2026-03-09", 2), bar("2026-03-09", 3)}, "bar 2 (2026-03-09): second bar for the same trading date"},
		{"descending", []marketdata.Bar{bar("2026-03-09", 1), bar("2026-03-06", 2)}, "bar 1 (2026-03-06): out of order: follows 2026-03-09"},
		{"zero close", []marketdata.Bar{bar("2026-03-06", 1), bar("2026-03-09", 0)}, "bar 1 (2026-03-09): close 0 is not a finite positive price"},
		{"negative close", []marketdata.Bar{bar("2026-03-06", -1)}, "bar 0 (2026-03-06): close -1"},
		{"NaN close", []marketdata.Bar{bar("2026-03-06", math.NaN())}, "close NaN"},
		{"Inf close", []marketdata.Bar{bar("2026-03-06", 1), bar("2026-03-09", math.Inf(1))}, "bar 1 (2026-03-09): close +Inf"},
		{"empty date", []marketdata.Bar{bar("", 1)}, "bar 0 (): date is not YYYY-MM-DD"},
		{"malformed date", []marketdata.Bar{bar("2026-3-6", 1)}, "bar 0 (2026-3-6): date is not YYYY-MM-DD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := marketdata.Validate(tt.bars)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil error, want %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if !errors.Is(err, marketdata.ErrInvalidBar) {
				t.Errorf("errors.Is(%v, ErrInvalidBar) = false", err)
			}
			var be *marketdata.BarError
			if !errors.As(err, &be) {
				t.Errorf("error %v is not a *BarError", err)
			}
		})
	}
}

func TestCloses(t *testing.T) {
	got := marketdata.Closes([]marketdata.Bar{bar("2026-03-06", 1.5), bar("2026-03-09", 2.25)})
	if len(got) != 2 || got[0] != 1.5 || got[1] != 2.25 {
		t.Errorf("Closes = %v, want [1.5 2.25]", got)
	}
	if got := marketdata.Closes(nil); len(got) != 0 {
		t.Errorf("Closes(nil) = %v, want empty", got)
	}
}
