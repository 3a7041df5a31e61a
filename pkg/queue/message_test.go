package queue

import (
	"errors"
	"os"
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
		if got != m {
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
		{"version 2", `{"v":2,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "schema version 2, want 1"},
		{"version string", `{"v":"1","ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "not a JSON message object"},
		{"no ticker", `{"v":1,"runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, `no "ticker"`},
		{"bad ticker", `{"v":1,"ticker":"AA PL;","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "invalid ticker symbol"},
		{"lower-case ticker", `{"v":1,"ticker":"aapl","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`, "not normalized"},
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
		{"too big", `{"v":1,"ticker":"AAPL","runId":"r","pad":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, "more than 4096"},
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
// whatever it accepts is a valid v1 message that re-encodes and decodes to
// the same value.
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(`{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z"}`))
	f.Add([]byte(`{"v":1,"ticker":"AAPL","runId":"r","enqueuedAt":"2026-11-27T02:30:00Z","attempt":4}`))
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
		if m.V != Version || m.Ticker == "" || m.RunID == "" || m.Attempt < 0 || m.Attempt > MaxAttempt {
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
		if again.Ticker != m.Ticker || again.RunID != m.RunID || !again.EnqueuedAt.Equal(m.EnqueuedAt) || again.Attempt != m.Attempt {
			t.Fatalf("round trip %+v != %+v", again, m)
		}
	})
}
