// Command processticker is the processTicker Lambda: for each queued ticker
// it fetches daily bars from Polygon, computes price, RSI(14) and MA50, and
// stores one ticker-data row per trading day. The wiring lives in
// pkg/app/processticker so the CLI runs the same code.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/zsmseven/backend/pkg/app/processticker"
)

func main() {
	h, err := processticker.New(context.Background(), os.LookupEnv, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "processTicker: start-up failed:", err)
		os.Exit(1)
	}
	lambda.Start(h)
}
