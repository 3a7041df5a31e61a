package analysisqueue_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/pkg/analysisqueue"
)

var batchKey = strings.Repeat("ab", 32)

func TestMessageRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	m := analysisqueue.New("Alpha ", "run-1", true, at)
	body, err := m.Encode()
	require.NoError(t, err)
	assert.JSONEq(t, `{"v":2,"kind":"portfolio","portfolio":"Alpha ","force":true,"runId":"run-1","enqueuedAt":"2026-11-28T06:00:00Z"}`, body)
	got, err := analysisqueue.Decode([]byte(body))
	require.NoError(t, err)
	assert.Equal(t, m, got, "the name is kept exactly as the shared table spells it")
	plain, _ := analysisqueue.New("ZSM Seven", "r", false, at).Encode()
	assert.NotContains(t, plain, "force")

	b := analysisqueue.NewBatch(batchKey, "run-1", at)
	body, err = b.Encode()
	require.NoError(t, err)
	assert.JSONEq(t, `{"v":2,"kind":"tickers","batch":"`+batchKey+`","runId":"run-1","enqueuedAt":"2026-11-28T06:00:00Z"}`, body)
	got, err = analysisqueue.Decode([]byte(body))
	require.NoError(t, err)
	assert.Equal(t, b, got)
	assert.Equal(t, "ticker batch abababababab", got.Label())
}

// A version 1 message, queued before the deploy, is still read.
func TestDecodeVersion1(t *testing.T) {
	m, err := analysisqueue.Decode([]byte(`{"v":1,"portfolio":"ZSM Seven","force":true,"runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}`))
	require.NoError(t, err)
	assert.Equal(t, analysisqueue.KindPortfolio, m.Kind)
	assert.Equal(t, "ZSM Seven", m.Portfolio)
	assert.True(t, m.Force)
}

func TestDecodePoison(t *testing.T) {
	const at = `,"runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}`
	for body, says := range map[string]string{
		`not json`: "not an analysis message",
		`{"v":3,"kind":"portfolio","portfolio":"P"` + at:                                  "schema version 3",
		`{"v":2,"portfolio":"P"` + at:                                                     `no "kind"`,
		`{"v":2,"kind":"ticker","batch":"` + batchKey + `"` + at:                          `"kind" "ticker" is not`,
		`{"v":2,"kind":"portfolio"` + at:                                                  `no "portfolio"`,
		`{"v":1` + at:                                                                     `no "portfolio"`,
		`{"v":1,"kind":"portfolio","portfolio":"P"` + at:                                  "a version 1 message has no",
		`{"v":2,"kind":"portfolio","portfolio":"*"` + at:                                  "names one portfolio",
		`{"v":2,"kind":"portfolio","portfolio":"A\nB"` + at:                               "control character",
		`{"v":2,"kind":"portfolio","portfolio":"P","batch":"` + batchKey + `"` + at:       `a portfolio message has no "batch"`,
		`{"v":2,"kind":"tickers"` + at:                                                    `no "batch"`,
		`{"v":2,"kind":"tickers","batch":"` + strings.ToUpper(batchKey) + `"` + at:        "not 64 lowercase hex digits",
		`{"v":2,"kind":"tickers","batch":"ab"` + at:                                       "not 64 lowercase hex digits",
		`{"v":2,"kind":"tickers","batch":"` + batchKey + `","force":true` + at:            `a batch message has no "portfolio" or "force"`,
		`{"v":2,"kind":"portfolio","portfolio":"P","enqueuedAt":"2026-11-28T06:00:00Z"}`:  `no "runId"`,
		`{"v":2,"kind":"portfolio","portfolio":"P","runId":"r"}`:                          `no "enqueuedAt"`,
		`{"v":2,"kind":"portfolio","portfolio":"P","runId":"r","enqueuedAt":"yesterday"}`: "not an RFC 3339 time",
		`{"v":2,"kind":"portfolio","portfolio":"P","extra":1` + at:                        "unknown field",
		`{"v":2,"kind":"portfolio","portfolio":"P"` + at + `{}`:                           "data after",
		`{"v":2,"kind":"portfolio","portfolio":"P","runId":"` + strings.Repeat("r", 129) + `","enqueuedAt":"2026-11-28T06:00:00Z"}`: "longer than 128",
		strings.Repeat(" ", 5000): "more than 4096",
	} {
		_, err := analysisqueue.Decode([]byte(body))
		require.ErrorIs(t, err, analysisqueue.ErrPoison, body)
		assert.Contains(t, err.Error(), says, body)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":1,"portfolio":"ZSM Seven","runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}`))
	f.Add([]byte(`{"v":2,"kind":"portfolio","portfolio":"*","runId":"r","enqueuedAt":"2026-11-28T06:00:00Z","force":true}`))
	f.Add([]byte(`{"v":2,"kind":"tickers","batch":"` + batchKey + `","runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := analysisqueue.Decode(b)
		if err != nil {
			if !assert.ErrorIs(t, err, analysisqueue.ErrPoison) {
				t.Fatal(err)
			}
			return
		}
		switch m.Kind {
		case analysisqueue.KindPortfolio:
			if m.Portfolio == "*" || m.Portfolio == "" || m.Batch != "" {
				t.Fatalf("accepted %+v", m)
			}
		case analysisqueue.KindTickers:
			if len(m.Batch) != 64 || m.Portfolio != "" || m.Force {
				t.Fatalf("accepted %+v", m)
			}
		default:
			t.Fatalf("accepted kind %q", m.Kind)
		}
		if m.RunID == "" {
			t.Fatalf("accepted %+v", m)
		}
		m.V = analysisqueue.Version
		body, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := analysisqueue.Decode([]byte(body))
		if err != nil || again != m {
			t.Fatalf("round trip %+v → %+v (%v)", m, again, err)
		}
	})
}
