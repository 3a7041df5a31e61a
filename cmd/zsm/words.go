package main

import (
	"strings"
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/marketdata"
)

// contractWords puts the contract's names and times in a help text written
// with placeholders, so that what the help says is what is deployed: a
// variable renamed or a schedule moved in pkg/deploy is renamed or moved
// here too.
var contractWords = strings.NewReplacer(
	"{polygon-key}", deploy.EnvPolygonAPIKey,
	"{polygon-base-url}", deploy.EnvPolygonBaseURL,
	"{polygon-rate}", deploy.EnvPolygonCallsPerMinute,
	"{xai-key}", deploy.EnvXAIAPIKey,
	"{xai-url}", deploy.EnvXAIAPIURL,
	"{xai-model}", deploy.EnvXAIModel,
	"{catch-up-at}", deploy.CatchUp.At(),
	"{night}", sampleNight(),
)

// sampleNight describes the schedules of a weekday's night:
// "processTickers at <its time>, …, analyzePortfolio at <its time> the
// morning after".
func sampleNight() string {
	monday := time.Date(2026, time.November, 23, 0, 0, 0, 0, marketdata.NewYork())
	return deploy.Describe(deploy.Night(monday, marketdata.NewYork()))
}
