package processtickers

import (
	"context"

	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/portfoliodb"
)

// Holdings is the shared portfolio tables as the use case's port: the
// reader's scan in the use case's words.
func Holdings(r *portfoliodb.Reader) pipeline.PortfolioSource { return holdings{r} }

type holdings struct{ r *portfoliodb.Reader }

func (h holdings) HeldSymbols(ctx context.Context) (pipeline.Holdings, error) {
	res, err := h.r.ScanSymbols(ctx)
	out := pipeline.Holdings{ItemsScanned: res.ItemsScanned, Pages: res.Pages, Symbols: res.Symbols}
	for _, inv := range res.Invalid {
		out.Invalid = append(out.Invalid, pipeline.InvalidSymbol{Table: inv.Table, Key: inv.Key, Value: inv.Value, Reason: inv.Reason})
	}
	return out, err
}
