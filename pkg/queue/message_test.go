package queue

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC)
	body, err := New("BRK.B", "run-1", at).Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"ticker":"BRK.B","runId":"run-1","enqueuedAt":"2026-11-27T02:30:00Z"}`
	if body != want {
		t.Fatalf("body = %s\nwant   %s", body, want)
	}
	m, err := Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if m.Ticker != "BRK.B" || m.RunID != "run-1" || !m.EnqueuedAt.Equal(at) || m.V != 1 {
		t.Fatalf("decoded %+v", m)
	}
}

func TestAttemptIsOptionalAndRoundTrips(t *testing.T) {
	at := time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC)
	tests := []struct {
		attempt int
		want    string
	}{
		{0, `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`},
		{1, `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z","attempt":1}`},
		{MaxAttempt, `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z","attempt":100}`},
	}
	for _, tt := range tests {
		m := New("AAPL", "r", at)
		m.Attempt = tt.attempt
		body, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if body != tt.want {
			t.Errorf("attempt %d: body = %s\nwant %s", tt.attempt, body, tt.want)
		}
		got, err := Decode([]byte(body))
		if err != nil {
			t.Fatalf("attempt %d: %v", tt.attempt, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("attempt %d: decoded %+v, want %+v", tt.attempt, got, m)
		}
	}
	// An explicit 0 is the same as none.
	m, err := Decode([]byte(`{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z","attempt":0}`))
	if err != nil || m.Attempt != 0 {
		t.Fatalf("explicit attempt 0: %+v %v", m, err)
	}
}

func TestDecodeRecordedMessage(t *testing.T) {
	// testdata/message-v1.json is the body as processTickers sends it.
	b, err := os.ReadFile("testdata/message-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Ticker != "AAPL" || m.RunID != "c0ffee00-1234-5678-9abc-def012345678" {
		t.Fatalf("decoded %+v", m)
	}
}

func TestDecodeRejectsPoison(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"empty", ``, "not a JSON message object"},
		{"not json", `AAPL`, "not a JSON message object"},
		{"array", `["AAPL"]`, "not a JSON message object"},
		{"null", `null`, `no schema version`},
		{"no version", `{"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, `no schema version`},
		{"version 3", `{"v":3,"kind":"ticker","ticker":"AAPL","date":"2026-11-25","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "schema version 3, want 2 or 1"},
		{"v2 without kind", `{"v":2,"ticker":"AAPL","date":"2026-11-25","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, `"kind" "", want "day", "ticker" or "fill"`},
		{"v2 unknown kind", `{"v":2,"kind":"week","date":"2026-11-25","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, `"kind" "week"`},
		{"v2 ticker without date", `{"v":2,"kind":"ticker","ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, `"date" missing or not a trading day`},
		{"v2 ticker on a holiday", `{"v":2,"kind":"ticker","ticker":"AAPL","date":"2026-11-26","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "not a trading day"},
		{"v2 ticker not normalized", `{"v":2,"kind":"ticker","ticker":"BRK-B","date":"2026-11-25","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, `is not normalized (want "BRK.B")`},
		{"v2 ticker with day fields", `{"v":2,"kind":"ticker","ticker":"AAPL","date":"2026-11-25","tickers":["AAPL"],"runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "a ticker message has no"},
		{"v2 day with a ticker", `{"v":2,"kind":"day","ticker":"AAPL","date":"2026-11-25","tickers":["AAPL"],"group":"tickers","part":1,"parts":1,"runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "a day message has no \"ticker\""},
		{"v2 day without tickers", `{"v":2,"kind":"day","date":"2026-11-25","tickers":[],"group":"tickers","part":1,"parts":1,"runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "must hold 1 to 15000"},
		{"v2 day unsorted", `{"v":2,"kind":"day","date":"2026-11-25","tickers":["MSFT","AAPL"],"group":"tickers","part":1,"parts":1,"runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "not sorted and unique at 1"},
		{"v2 day duplicate", `{"v":2,"kind":"day","date":"2026-11-25","tickers":["AAPL","AAPL"],"group":"tickers","part":1,"parts":1,"runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "not sorted and unique"},
		{"v2 day bad symbol", `{"v":2,"kind":"day","date":"2026-11-25","tickers":["AAPL","<b>"],"group":"tickers","part":1,"parts":1,"runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "tickers[1]: invalid ticker symbol"},
		{"v2 day without group", `{"v":2,"kind":"day","date":"2026-11-25","tickers":["AAPL"],"part":1,"parts":1,"runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, `"group" missing`},
		{"v2 day part beyond parts", `{"v":2,"kind":"day","date":"2026-11-25","tickers":["AAPL"],"group":"tickers","part":2,"parts":1,"runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "1 ≤ part ≤ parts"},
		{"v1 with a date", `{"v":1,"ticker":"AAPL","date":"2026-11-25","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "v1 has no"},
		{"version string", `{"v":"1","ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "not a JSON message object"},
		{"no ticker", `{"v":1,"runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, `no "ticker"`},
		{"bad ticker", `{"v":1,"ticker":"AA PL;","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "invalid ticker symbol"},
		{"trailing separator", `{"v":1,"ticker":"BRK-","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "trailing separator"},
		{"no run id", `{"v":1,"ticker":"AAPL","enqueuedAt":"2026-11-27T02:30:00Z"}`, `no "runId"`},
		{"empty run id", `{"v":1,"ticker":"AAPL","runId":"","enqueuedAt":"2026-11-27T02:30:00Z"}`, `no "runId"`},
		{"long run id", `{"v":1,"ticker":"AAPL","runId":"` + strings.Repeat("r", 129) + `","enqueuedAt":"2026-11-27T02:30:00Z"}`, "longer than 128"},
		{"no time", `{"v":1,"ticker":"AAPL","runId":"r"}`, `no "enqueuedAt"`},
		{"bad time", `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"yesterday"}`, "not an RFC 3339 time"},
		{"negative attempt", `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z","attempt":-1}`, `"attempt" -1 outside 0..100`},
		{"attempt above the bound", `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z","attempt":101}`, `"attempt" 101 outside 0..100`},
		{"fractional attempt", `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z","attempt":1.5}`, "not a JSON message object"},
		{"string attempt", `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z","attempt":"1"}`, "not a JSON message object"},
		{"time before year 1 in UTC", `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"0000-01-01T00:00:00+01:00"}`, "outside years 1..9999"},
		{"unknown field", `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z","delay":75}`, "unknown field"},
		{"trailing data", `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"} {}`, "data after"},
		{"too big", `{"v":1,"ticker":"AAPL","runId":"r","pad":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, "more than 262144"},
		{"ticker message too big", `{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00.` + strings.Repeat("0", 4100) + `Z"}`, "more than 4096 for a ticker message"},
		{"long unknown field is clipped", `{"` + strings.Repeat("k", 1000) + `":1}`, "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body))
			if err == nil {
				t.Fatal("decoded a poison message")
			}
			if !errors.Is(err, ErrPoison) {
				t.Errorf("error %v does not wrap ErrPoison", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

// FuzzDecodeMessage: Decode never panics, errors always wrap ErrPoison, and
// whatever it accepts is a valid v2 (day or ticker) or v1 message that
// re-encodes and decodes to the same value.
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(`{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`))
	f.Add([]byte(`{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z","attempt":4}`))
	f.Add([]byte(`{"v":2,"kind":"ticker","ticker":"BRK.B","date":"2026-11-25","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`))
	f.Add([]byte(`{"v":2,"kind":"day","date":"2026-11-25","tickers":["AAPL","BRK.B"],"group":"tickers","part":1,"parts":2,"runId":"r","enqueuedAt":"2026-11-27T02:30:00Z","attempt":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrPoison) {
				t.Fatalf("error %v does not wrap ErrPoison", err)
			}
			if len(err.Error()) > 400 {
				t.Fatalf("error is %d bytes long", len(err.Error()))
			}
			return
		}
		if (m.V != Version && m.V != Version1) || (m.Ticker == "") == (m.Kind != KindDay) || m.RunID == "" || m.Attempt < 0 || m.Attempt > MaxAttempt {
			t.Fatalf("accepted %+v", m)
		}
		body, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decode([]byte(body))
		if err != nil {
			t.Fatalf("re-decode %s: %v", body, err)
		}
		if !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip %+v != %+v", again, m)
		}
	})
}

func TestV2MessagesRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 26, 2, 30, 0, 0, time.UTC)
	tk := NewTicker("BRK.B", "2026-11-25", "run-1", at)
	body, err := tk.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":2,"kind":"ticker","ticker":"BRK.B","date":"2026-11-25","runId":"run-1","enqueuedAt":"2026-11-26T02:30:00Z"}`; body != want {
		t.Errorf("ticker body %s\nwant        %s", body, want)
	}
	day := NewDay("2026-11-25", []string{"AAPL", "BRK.B"}, "tickers", 1, 1, "run-1", at)
	dbody, err := day.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"v":2,"kind":"day","date":"2026-11-25","tickers":["AAPL","BRK.B"],"group":"tickers","part":1,"parts":1,"runId":"run-1","enqueuedAt":"2026-11-26T02:30:00Z"}`; dbody != want {
		t.Errorf("day body %s\nwant     %s", dbody, want)
	}
	for _, m := range []Message{tk, day} {
		b, _ := m.Encode()
		got, err := Decode([]byte(b))
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("decoded %+v, %v; want %+v", got, err, m)
		}
	}
	if day.PartKey() != "run-1/tickers/1-of-1" || day.Label() != "day 2026-11-25" || !day.IsDay() || tk.IsDay() {
		t.Errorf("part key %q label %q", day.PartKey(), day.Label())
	}
	// The de-duplication ids of a run: one per ticker and one per day part,
	// distinct from each other.
	if tk.DeduplicationID() != DeduplicationID("run-1", "BRK.B") || day.DeduplicationID() == tk.DeduplicationID() ||
		day.DeduplicationID() != DeduplicationID("run-1", "#day/run-1/tickers/1-of-1") {
		t.Error("de-duplication ids")
	}
	if day.GroupOf(5) != "tickers" || tk.GroupOf(1) != "tickers" {
		t.Error("groups")
	}
}

// 10,000 held tickers of the longest spelling fit one day message, within
// SQS's 256 KiB; MaxDayTickers of them too.
func TestDayMessageOfTenThousandTickersFits(t *testing.T) {
	var tickers []string
	for i := range MaxDayTickers {
		tickers = append(tickers, fmt.Sprintf("A%09d", i)) // 10 characters
	}
	for _, n := range []int{10000, MaxDayTickers} {
		body, err := NewDay("2026-11-25", tickers[:n], "tickers-99", 1000, 1000, strings.Repeat("r", 128), time.Now()).Encode()
		if err != nil {
			t.Fatal(err)
		}
		if len(body) > MaxMessageBytes {
			t.Errorf("%d tickers: %d bytes, more than %d", n, len(body), MaxMessageBytes)
		}
		if _, err := Decode([]byte(body)); err != nil {
			t.Errorf("%d tickers: %v", n, err)
		}
	}
}

// A v1 message of the old producer still reads: its ticker is normalized.
func TestV1IsStillRead(t *testing.T) {
	m, err := Decode([]byte(`{"v":1,"ticker":"BRK-B","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`))
	if err != nil || m.V != 1 || m.Ticker != "BRK.B" || m.Kind != "" || m.Date != "" {
		t.Fatalf("v1: %+v %v", m, err)
	}
}

// A fill message: one session of the night's window, its place in the fill,
// its group; decoded back as it was sent, its own de-duplication id and
// group; the fields of other kinds refused.
func TestFillMessage(t *testing.T) {
	at := time.Date(2026, 11, 26, 2, 31, 0, 0, time.UTC)
	m := NewFill("2026-03-02", "2026-11-25", "tickers", 17, 253, "run-7/fill", at)
	body, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":2,"kind":"fill","date":"2026-03-02","night":"2026-11-25","group":"tickers","part":17,"parts":253,"runId":"run-7/fill","enqueuedAt":"2026-11-26T02:31:00Z"}`
	if body != want {
		t.Fatalf("body %s\nwant %s", body, want)
	}
	got, err := Decode([]byte(body))
	if err != nil || !reflect.DeepEqual(got, m) || !got.IsFill() || !got.IsMarket() || got.IsDay() || got.Label() != "fill 2026-03-02" {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	// sha256("run-7/fill/#fill/tickers/2026-03-02"), from sha256sum.
	if id := got.DeduplicationID(); id != "ff482cc0076afad7630470da1f5f36457995aded357a9b2691af6498b0df5467" {
		t.Errorf("dedup id %s", id)
	}
	if g := got.GroupOf(4); g != "tickers" {
		t.Errorf("group %s", g)
	}
	for name, body := range map[string]string{
		"night before date":   `{"v":2,"kind":"fill","date":"2026-03-02","night":"2026-02-27","group":"t","part":1,"parts":1,"runId":"r","enqueuedAt":"2026-11-26T02:31:00Z"}`,
		"no night":            `{"v":2,"kind":"fill","date":"2026-03-02","group":"t","part":1,"parts":1,"runId":"r","enqueuedAt":"2026-11-26T02:31:00Z"}`,
		"night not a session": `{"v":2,"kind":"fill","date":"2026-03-02","night":"2026-11-26","group":"t","part":1,"parts":1,"runId":"r","enqueuedAt":"2026-11-26T02:31:00Z"}`,
		"with tickers":        `{"v":2,"kind":"fill","date":"2026-03-02","night":"2026-11-25","tickers":["A"],"group":"t","part":1,"parts":1,"runId":"r","enqueuedAt":"2026-11-26T02:31:00Z"}`,
		"part beyond parts":   `{"v":2,"kind":"fill","date":"2026-03-02","night":"2026-11-25","group":"t","part":3,"parts":2,"runId":"r","enqueuedAt":"2026-11-26T02:31:00Z"}`,
		"night on a ticker":   `{"v":2,"kind":"ticker","ticker":"AAPL","date":"2026-11-25","night":"2026-11-25","runId":"r","enqueuedAt":"2026-11-26T02:31:00Z"}`,
	} {
		if _, err := Decode([]byte(body)); !errors.Is(err, ErrPoison) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
