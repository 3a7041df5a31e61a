package polygon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zsmseven/backend/pkg/polygon"
)

// FuzzDecodeAggregates feeds arbitrary bodies to the decoder: it must never
// panic, its errors must be one line, and whatever it accepts and Bars
// validates must be a clean series (ascending New York dates, finite
// positive closes, one bar per result). The recorded samples and the corpus
// in testdata/fuzz/FuzzDecodeAggregates run on every `go test`.
func FuzzDecodeAggregates(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "aggs", "*.json"))
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
		a, err := polygon.DecodeAggregates(data)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("decode error spans lines: %q", err)
			}
			return
		}
		if a.Status != "OK" && a.Status != "DELAYED" {
			t.Fatalf("accepted status %q", a.Status)
		}
		bars, err := a.Bars()
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("bars error spans lines: %q", err)
			}
			return
		}
		aggsCheckBars(t, a, bars)
	})
}
