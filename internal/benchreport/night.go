package main

import (
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
)

// The night of analyses, on a clock scaled by nightScale: every duration
// the deployed system waits — the model's 30 s answer, the 300 s
// invocation deadline, the 120 s attempt timeout, the 15 s reserve, the
// waits for another run's reservation — is divided by it. Local DynamoDB
// work (dynalite) is not scaled: it is real time on this machine.
const (
	nightPortfolios  = 1000
	nightPositions   = 5
	nightTickers     = 50
	nightAnswer      = 30 * time.Second
	nightScale       = 50
	nightConcurrency = deploy.DefaultAnalysisConcurrency
)

func scaled(d time.Duration) time.Duration { return d / nightScale }
