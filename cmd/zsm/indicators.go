package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/zsmseven/backend/pkg/indicators"
	"github.com/zsmseven/backend/pkg/polygon"
)

// maxAggsBytes bounds the input: a response of 50,000 daily bars (Polygon's
// page limit, about 200 years) is under 10 MB.
const maxAggsBytes = 64 << 20

// indicatorsOutput is the contract other checks rely on, key for key:
// {"ticker","price","rsi","ma50","asOf","bars"}; rsi and ma50 are null when
// there are too few closes. Floats are printed with encoding/json's shortest
// round-trip form: full precision, no rounding.
type indicatorsOutput struct {
	Ticker string   `json:"ticker"`
	Price  float64  `json:"price"`
	RSI    *float64 `json:"rsi"`
	MA50   *float64 `json:"ma50"`
	AsOf   string   `json:"asOf"`
	Bars   int      `json:"bars"`
}

func runIndicators(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := newCmdFlags("indicators", "zsm indicators --aggs FILE",
		"Reads one Polygon aggregates response body (GET /v2/aggs/ticker/{T}/range/1/day/{from}/{to})\n"+
			"from FILE, or from stdin when FILE is -, and prints one JSON object on stdout:\n"+
			`  {"ticker": string, "price": number, "rsi": number|null, "ma50": number|null, "asOf": "YYYY-MM-DD", "bars": int}`+"\n"+
			"price is the last close; rsi is RSI(14) with Wilder smoothing (null with fewer than 15 closes);\n"+
			"ma50 is the mean of the last 50 closes (null with fewer than 50); asOf is the New York trading\n"+
			"date of the last bar; bars is the number of bars used. Numbers are not rounded.\n"+
			"No bars, invalid JSON, an error response or invalid bars: exit status 1 and one line on stderr.",
		stdout)
	aggsFile := fs.String("aggs", "", "`FILE` holding one Polygon aggregates response body, or - for stdin (required)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("indicators: unexpected argument %.40q (see zsm indicators --help)", fs.Arg(0))
	}
	if *aggsFile == "" {
		return usagef("indicators: --aggs FILE is required (see zsm indicators --help)")
	}

	data, err := readAggs(*aggsFile)
	if err != nil {
		return fmt.Errorf("indicators: %w", err)
	}
	aggs, err := polygon.DecodeAggregates(data)
	if err != nil {
		return fmt.Errorf("indicators: %s: %w", *aggsFile, err)
	}
	bars, err := aggs.Bars()
	if err != nil {
		return fmt.Errorf("indicators: %s: %w", *aggsFile, err)
	}
	if len(bars) == 0 {
		return fmt.Errorf("indicators: %s: no bars (status %.20q, resultsCount %d)", *aggsFile, aggs.Status, aggs.ResultsCount)
	}
	s, err := indicators.Compute(bars)
	if err != nil {
		return fmt.Errorf("indicators: %s: %w", *aggsFile, err)
	}
	out := indicatorsOutput{Ticker: aggs.Ticker, Price: s.Price, RSI: s.RSI, MA50: s.MA50, AsOf: s.AsOf, Bars: s.Bars}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		return fmt.Errorf("indicators: write result: %w", err)
	}
	return nil
}

// readAggs reads the file name, or stdin for "-", refusing absurd sizes.
func readAggs(name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = stdinReader
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxAggsBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > maxAggsBytes {
		return nil, fmt.Errorf("read %s: larger than %d bytes", name, maxAggsBytes)
	}
	return data, nil
}
