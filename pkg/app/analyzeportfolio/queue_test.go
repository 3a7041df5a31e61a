package analyzeportfolio_test

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
	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
)

// The analysis queue's sender goes through the real SDK client to the local
// SQS endpoint, in batches of 10, in order.
func TestSendThroughSQS(t *testing.T) {
	srv, err := localsqs.Start("127.0.0.1:0", localsqs.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	url := srv.CreateQueue("portfolio-analysis-queue-test")
	client := sqs.New(sqs.Options{Region: localsqs.Region, BaseEndpoint: aws.String(srv.Endpoint()),
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	msgs := []analysisqueue.Message{analysisqueue.NewBatch(strings.Repeat("0f", 32), "run", time.Now())}
	for i := range 22 {
		msgs = append(msgs, analysisqueue.New(fmt.Sprintf("P%02d", i), "run", false, time.Now()))
	}
	n, failed, err := analyzeportfolio.NewQueue(client, url).Send(context.Background(), msgs)
	require.NoError(t, err)
	assert.Equal(t, 23, n)
	assert.Empty(t, failed)
	bodies := srv.Visible("portfolio-analysis-queue-test")
	require.Len(t, bodies, 23)
	for i, b := range bodies {
		m, err := analysisqueue.Decode([]byte(b))
		require.NoError(t, err)
		assert.Equal(t, msgs[i].Label(), m.Label(), "sent in order")
	}

	_, failed, err = analyzeportfolio.NewQueue(client, srv.QueueURL("missing")).Send(context.Background(), msgs[:12])
	require.Error(t, err)
	assert.Len(t, failed, 12, "every message of a failed call is reported")
	assert.Equal(t, analysisqueue.KindTickers, failed[0].Message.Kind)
}
