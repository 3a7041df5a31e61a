package main

import (
	"time"

	"github.com/zsmseven/backend/pkg/deploy"
)

// The comparison's parameters.
const (
	designDay         = "2026-11-27"
	designSeed        = 2026
	designPositions   = 10
	designZipfS       = 1.07
	designScale       = 200
	designConcurrency = deploy.DefaultAnalysisConcurrency
	// todaysDesign is the commit whose design is measured beside this
	// tree's: the base of the two-level analysis.
	todaysDesign = "4046efd"
	// The model's speed the local server answers at (grok-4.3 is reported
	// at about 159 tokens a second) and its time to a first token.
	designTokensPerSecond = 150
	designFirstToken      = time.Second
)

// designSizes are the nights compared: portfolios and distinct tickers.
var designSizes = []struct{ portfolios, tickers int }{{1000, 1500}, {10000, 4000}}
