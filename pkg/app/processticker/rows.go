package processticker

import (
	"context"

	"github.com/zsmseven/backend/pkg/pipeline"
	"github.com/zsmseven/backend/pkg/tickerdb"
)

// Rows is the ticker-data table as the use case's port: a pipeline.Row
// stored as the tickerdb.Row the readers (the analysis, zsm status) read.
func Rows(s *tickerdb.Store) pipeline.Rows { return rows{s} }

type rows struct{ s *tickerdb.Store }

func (r rows) PutRow(ctx context.Context, row pipeline.Row) error {
	return r.s.Put(ctx, tickerdb.Row{Ticker: row.Ticker, Timestamp: row.Timestamp, Snapshot: row.Snapshot,
		FetchedAt: row.FetchedAt, Source: row.Source, Partial: row.Partial})
}

func (r rows) HasRow(ctx context.Context, ticker, date string) (bool, error) {
	return r.s.Has(ctx, ticker, date)
}
