// Command hello is the smallest Lambda: it echoes its event's "name", or
// fails when asked to, so the emulator runner can be tested without the
// service's functions.
package main

import (
	"context"
	"errors"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
)

type event struct {
	Name string `json:"name"`
	Fail bool   `json:"fail"`
}

func main() {
	greeting := os.Getenv("GREETING")
	lambda.Start(func(_ context.Context, e event) (map[string]string, error) {
		if e.Fail {
			return nil, errors.New("asked to fail")
		}
		return map[string]string{"message": greeting + ", " + e.Name}, nil
	})
}
