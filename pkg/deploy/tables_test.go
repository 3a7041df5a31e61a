package deploy

import "testing"

func TestTableNamesFollowTheContract(t *testing.T) {
	// architecture.md: ticker-data-{stage}, portfolio-analyses-{stage},
	// user-portfolios-{stage}, portfolio-positions-{stage}.
	want := map[string]string{
		TickerData.Name("dev"):           "ticker-data-dev",
		DailyBars.Name("prod"):           "daily-bars-prod",
		PortfolioAnalyses.Name("prod"):   "portfolio-analyses-prod",
		UserPortfolios.Name("dev"):       "user-portfolios-dev",
		PortfolioPositions.Name("prod"):  "portfolio-positions-prod",
		AnalysisReservations.Name("dev"): "analysis-reservations-dev",
	}
	for got, w := range want {
		if got != w {
			t.Errorf("name %q, want %q", got, w)
		}
	}
	if TickerData.PartitionKey.Name != "ticker" || TickerData.SortKey.Name != "timestamp" ||
		PortfolioAnalyses.PartitionKey.Name != "portfolio" || PortfolioAnalyses.SortKey.Name != "timestamp" {
		t.Error("owned tables' keys differ from the data contract")
	}
	if AnalysisReservations.PartitionKey.Name != "key" || AnalysisReservations.SortKey != nil || AnalysisReservations.TTLAttribute != "expiresAt" {
		t.Error("reservations table keys or TTL differ from the contract")
	}
	if DailyBars.PartitionKey.Name != "ticker" || DailyBars.SortKey.Name != "date" || DailyBars.TTLAttribute != "expiresAt" {
		t.Error("daily-bars keys or TTL differ from decision 0002")
	}
	if TickerData.Shared || DailyBars.Shared || PortfolioAnalyses.Shared || AnalysisReservations.Shared || !UserPortfolios.Shared || !PortfolioPositions.Shared {
		t.Error("ownership flags wrong")
	}
}
