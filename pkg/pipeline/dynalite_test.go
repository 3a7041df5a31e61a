package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/internal/devstack/fakeclock"
	"github.com/zsmseven/backend/pkg/app/processticker"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

// Re-processing a ticker on the same trading day, against the real DynamoDB
// API, leaves exactly one item, and the latest-row query returns it: the
// redeliveries find the row of the day stored and neither fetch nor write.
func TestReprocessingSameTradingDayLeavesOneItem(t *testing.T) {
	env := dynalitetest.New(t, deploy.TickerData)
	table := deploy.TickerData.Name(env.Stage)
	store := tickerdb.NewStore(env.Client, table)
	clock := fakeclock.New(time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC))
	m := &fakeMarket{}
	p := &pipeline.ProcessTicker{Market: m, Rows: processticker.Rows(store), History: newMemHistory(), Source: "polygon", Now: clock.Now}
	ctx := context.Background()
	for i := range 3 { // the first delivery and two retries, later the same night
		resp, err := p.Handle(ctx, event(fifoARN, [2]string{"m", body("AAPL")}))
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("run %d: %+v %v", i, resp, err)
		}
		clock.Advance(10 * time.Minute)
	}
	out, err := env.Client.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    aws.String("ticker = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberS{Value: "AAPL"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 1 {
		t.Fatalf("%d items for AAPL on one trading day, want 1", len(out.Items))
	}
	row, ok, err := store.Latest(ctx, "AAPL")
	if err != nil || !ok {
		t.Fatalf("Latest: %v %v", ok, err)
	}
	// The first run's fetch time: the redeliveries made no call.
	if row.AsOf != "2026-11-25" || !row.FetchedAt.Equal(time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)) || len(m.calls) != 1 {
		t.Fatalf("latest row %+v after %d calls", row, len(m.calls))
	}
}
