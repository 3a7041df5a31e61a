// Command analyzeportfolio is the analyzePortfolio Lambda: on its schedule
// (or a manual event) it analyzes a portfolio with xAI Grok (or the rules
// analyst) and stores the result, or fans out one message per portfolio on
// the analysis queue; invoked by that queue, it analyzes the portfolio of
// each message. The wiring lives in pkg/app/analyzeportfolio so the CLI
// runs the same code.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/zsmseven/backend/pkg/app/analyzeportfolio"
)

func main() {
	f, err := analyzeportfolio.New(context.Background(), os.LookupEnv, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "analyzePortfolio: start-up failed:", err)
		os.Exit(1)
	}
	lambda.Start(f.Invoke)
}
