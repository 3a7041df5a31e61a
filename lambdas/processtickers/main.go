// Command processtickers is the processTickers Lambda: it collects every
// ticker held in the shared portfolio tables (or the tickers of a manual
// event) and queues one message per ticker. The wiring lives in
// pkg/app/processtickers so the CLI runs the same code.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/zsmseven/backend/pkg/app/processtickers"
)

func main() {
	h, err := processtickers.New(context.Background(), os.LookupEnv, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "processTickers: start-up failed:", err)
		os.Exit(1)
	}
	lambda.Start(h)
}
