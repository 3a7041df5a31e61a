package analysisqueue_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/internal/devstack/localsqs"
	"github.com/zsmseven/backend/pkg/analysisqueue"
)

func TestMessageRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	m := analysisqueue.New("Alpha ", "run-1", true, at)
	body, err := m.Encode()
	require.NoError(t, err)
	assert.JSONEq(t, `{"v":1,"portfolio":"Alpha ","force":true,"runId":"run-1","enqueuedAt":"2026-11-28T06:00:00Z"}`, body)
	got, err := analysisqueue.Decode([]byte(body))
	require.NoError(t, err)
	assert.Equal(t, m, got, "the name is kept exactly as the shared table spells it")
	plain, _ := analysisqueue.New("ZSM Seven", "r", false, at).Encode()
	assert.NotContains(t, plain, "force")
}

func TestDecodePoison(t *testing.T) {
	for body, says := range map[string]string{
		`not json`: "not an analysis message",
		`{"v":2,"portfolio":"P","runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}`:                                "schema version 2",
		`{"v":1,"runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}`:                                                `no "portfolio"`,
		`{"v":1,"portfolio":"*","runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}`:                                "names one portfolio",
		`{"v":1,"portfolio":"A\nB","runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}`:                             "control character",
		`{"v":1,"portfolio":"P","enqueuedAt":"2026-11-28T06:00:00Z"}`:                                            `no "runId"`,
		`{"v":1,"portfolio":"P","runId":"r"}`:                                                                    `no "enqueuedAt"`,
		`{"v":1,"portfolio":"P","runId":"r","enqueuedAt":"yesterday"}`:                                           "not an RFC 3339 time",
		`{"v":1,"portfolio":"P","runId":"r","enqueuedAt":"2026-11-28T06:00:00Z","extra":1}`:                      "unknown field",
		`{"v":1,"portfolio":"P","runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}{}`:                              "data after",
		`{"ticker":"AAPL","v":1,"runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}`:                                "unknown field",
		`{"v":1,"portfolio":"P","runId":"` + strings.Repeat("r", 129) + `","enqueuedAt":"2026-11-28T06:00:00Z"}`: "longer than 128",
		strings.Repeat(" ", 5000): "more than 4096",
	} {
		_, err := analysisqueue.Decode([]byte(body))
		require.ErrorIs(t, err, analysisqueue.ErrPoison, body)
		assert.Contains(t, err.Error(), says, body)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":1,"portfolio":"ZSM Seven","runId":"r","enqueuedAt":"2026-11-28T06:00:00Z"}`))
	f.Add([]byte(`{"v":1,"portfolio":"*","runId":"r","enqueuedAt":"2026-11-28T06:00:00Z","force":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := analysisqueue.Decode(b)
		if err != nil {
			if !assert.ErrorIs(t, err, analysisqueue.ErrPoison) {
				t.Fatal(err)
			}
			return
		}
		if m.Portfolio == "*" || m.Portfolio == "" || m.RunID == "" {
			t.Fatalf("accepted %+v", m)
		}
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

// The sender goes through the real SDK client to the local SQS endpoint,
// in batches of 10, in order.
func TestSendThroughSQS(t *testing.T) {
	srv, err := localsqs.Start("127.0.0.1:0", localsqs.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	url := srv.CreateQueue("portfolio-analysis-queue-test")
	client := sqs.New(sqs.Options{Region: localsqs.Region, BaseEndpoint: aws.String(srv.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	var msgs []analysisqueue.Message
	for i := range 23 {
		msgs = append(msgs, analysisqueue.New(fmt.Sprintf("P%02d", i), "run", false, time.Now()))
	}
	n, failed, err := analysisqueue.NewSender(client, url).Send(context.Background(), msgs)
	require.NoError(t, err)
	assert.Equal(t, 23, n)
	assert.Empty(t, failed)
	bodies := srv.Visible("portfolio-analysis-queue-test")
	require.Len(t, bodies, 23)
	for i, b := range bodies {
		m, err := analysisqueue.Decode([]byte(b))
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("P%02d", i), m.Portfolio, "sent in order")
	}

	_, failed, err = analysisqueue.NewSender(client, srv.QueueURL("missing")).Send(context.Background(), msgs[:12])
	require.Error(t, err)
	assert.Len(t, failed, 12, "every message of a failed call is reported")
}
