package polygon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/symbol"
)

// FuzzDecodeGrouped feeds arbitrary bodies to the grouped-daily decoder: it
// must never panic, its errors must be one line, and every bar Day keeps
// must be usable — a normalized symbol, the day asked for, finite positive
// prices — while every other row is listed as skipped. The recorded samples
// (testdata/grouped/*.json) run on every `go test`.
func FuzzDecodeGrouped(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "grouped", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no recorded samples: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := polygon.DecodeGrouped(data)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("decode error spans lines: %q", err)
			}
			return
		}
		day := g.Day("2020-10-14")
		if len(day.Bars)+len(day.Skipped) != len(g.Results) || day.Rows != len(g.Results) {
			t.Fatalf("%d bars + %d skipped for %d rows", len(day.Bars), len(day.Skipped), len(g.Results))
		}
		for tk, b := range day.Bars {
			if !symbol.Valid(tk) || b.Date != "2020-10-14" || marketdata.CheckPrices(b) != "" {
				t.Fatalf("kept %q %+v", tk, b)
			}
		}
	})
}
