// Command analyzeportfolio is the analyzePortfolio Lambda: it analyzes a
// portfolio with xAI Grok (or the rules analyst) and stores the result. The
// wiring lives in pkg/functions so the CLI runs the same code.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/zsmseven/backend/pkg/functions"
)

func main() {
	h, err := functions.AnalyzePortfolio(context.Background(), os.LookupEnv, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "analyzePortfolio: start-up failed:", err)
		os.Exit(1)
	}
	lambda.Start(h)
}
