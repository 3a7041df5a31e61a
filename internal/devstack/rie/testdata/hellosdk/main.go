// Command hellosdk is the hello-world Lambda plus what every service
// function pays for the AWS SDK before its first event: it links the
// DynamoDB and SQS clients and the default configuration loader, and at
// start-up loads the default configuration and builds both clients. The
// cold-start benchmark measures it beside hello and the real bootstraps, to
// separate the SDK's share of their init from the service's own.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

type event struct {
	Name string `json:"name"`
}

func main() {
	greeting := os.Getenv("GREETING")
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "hellosdk: load AWS configuration:", err)
		os.Exit(1)
	}
	db, q := dynamodb.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	lambda.Start(func(_ context.Context, e event) (map[string]string, error) {
		_, _ = db, q
		return map[string]string{"message": greeting + ", " + e.Name}, nil
	})
}
