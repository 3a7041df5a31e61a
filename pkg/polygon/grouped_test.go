package polygon_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/marketdata"
	"github.com/zsmseven/backend/pkg/polygon"
	"github.com/zsmseven/backend/pkg/retry"
)

func TestGroupedDailyContract(t *testing.T) {
	h := newHarness(t, fakepolygon.Options{}, nil)
	h.srv.EnqueueFor(fakepolygon.Grouped, recorded(t, 200, "grouped/ok.json"))
	day, err := h.c.GroupedDaily(context.Background(), "2020-10-14")
	h.checkNoLeak(t, err)
	if err != nil {
		t.Fatal(err)
	}
	r := h.srv.Requests()[0]
	if r.RequestURI != "/v2/aggs/grouped/locale/us/market/stocks/2020-10-14?adjusted=false&include_otc=true" {
		t.Errorf("request %s", r.RequestURI)
	}
	if !day.Published() || day.Rows != 12 || day.Date != "2020-10-14" {
		t.Errorf("day %s: %d rows, published %v", day.Date, day.Rows, day.Published())
	}
	// The values written in testdata/grouped/ok.json.
	want := map[string]float64{"AAPL": 121.1, "MSFT": 220.86, "BRK.B": 214.26}
	if len(day.Bars) != len(want) {
		t.Errorf("bars %v, want %v", day.Bars, want)
	}
	for tk, c := range want {
		b, ok := day.Bars[tk]
		if !ok || b.Close != c || b.Date != "2020-10-14" || b.Start.UnixMilli() != 1602648000000 {
			t.Errorf("%s: %+v, want close %v on 2020-10-14 starting at midnight New York", tk, b, c)
		}
	}
	skipped := map[string]string{}
	for _, s := range day.Skipped {
		skipped[s.Ticker] += s.Reason + ";"
	}
	for tk, reason := range map[string]string{
		"KIMpL": "not a normalized symbol", "DUPL": "ticker appears 2 times", "ZERO": "open 0 is not a finite positive price",
		"EARLY": "row of 2020-10-13", "NOCLOSE": "missing o, h, l, c or v", "": "not a row object",
		"HUGE": "open 1e+200 is outside the sane range of a price", "VOLX": "volume 1e+20 is outside the sane range",
	} {
		if !strings.Contains(skipped[tk], reason) {
			t.Errorf("%q skipped for %q, want %q", tk, skipped[tk], reason)
		}
	}
	if len(day.Skipped) != 9 { // DUPL twice
		t.Errorf("%d rows skipped, want 9: %+v", len(day.Skipped), day.Skipped)
	}
}

func TestGroupedDailyNotPublishedAndErrors(t *testing.T) {
	t.Run("not published", func(t *testing.T) {
		h := newHarness(t, fakepolygon.Options{}, nil)
		h.srv.EnqueueFor(fakepolygon.Grouped, recorded(t, 200, "grouped/not_published.json"))
		day, err := h.c.GroupedDaily(context.Background(), "2020-10-14")
		if err != nil || day.Published() || len(day.Bars) != 0 {
			t.Fatalf("day %+v, %v; want not published, no error", day, err)
		}
	})
	for _, c := range []struct {
		name      string
		resp      []fakepolygon.Response
		calls     int
		permanent bool
		is        error
	}{
		{"403 plan", []fakepolygon.Response{recorded(t, 403, "errors/403_not_authorized.json")}, 1, true, marketdata.ErrNotEntitled},
		{"403 before the plan's history", []fakepolygon.Response{recorded(t, 403, "errors/403_outside_plan.json")}, 1, true, marketdata.ErrOutsidePlan},
		{"401 key", []fakepolygon.Response{recorded(t, 401, "errors/401_unknown_key.json")}, 1, true, marketdata.ErrKeyRefused},
		{"400 no key", []fakepolygon.Response{recorded(t, 400, "errors/400_missing_key.json")}, 1, true, marketdata.ErrKeyRefused},
		{"cut body, every attempt", func() []fakepolygon.Response {
			cut := recorded(t, 200, "grouped/ok.json")
			cut.TruncateAt = 200
			return []fakepolygon.Response{cut, cut, cut, cut}
		}(), 4, false, nil},
		{"not JSON, every attempt", []fakepolygon.Response{fakepolygon.JSON(200, "<html>"), fakepolygon.JSON(200, "<html>"),
			fakepolygon.JSON(200, "<html>"), fakepolygon.JSON(200, "<html>")}, 4, false, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, fakepolygon.Options{}, nil)
			h.srv.EnqueueFor(fakepolygon.Grouped, c.resp...)
			_, err := h.c.GroupedDaily(context.Background(), "2020-10-14")
			h.checkNoLeak(t, err)
			if err == nil || retry.IsPermanent(err) != c.permanent || h.srv.Calls() != c.calls {
				t.Fatalf("err %v (permanent %v) after %d calls; want permanent %v after %d", err, retry.IsPermanent(err), h.srv.Calls(), c.permanent, c.calls)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("err %v is not %v", err, c.is)
			}
			if c.is == marketdata.ErrNotEntitled && errors.Is(err, marketdata.ErrKeyRefused) {
				t.Error("a 403 reads as a refused key")
			}
			if c.is == marketdata.ErrOutsidePlan && (errors.Is(err, marketdata.ErrNotEntitled) || errors.Is(err, marketdata.ErrKeyRefused) || errors.Is(err, polygon.ErrUnauthorized)) {
				t.Errorf("a date before the plan's history reads as a refused plan or key: %v", err)
			}
		})
	}
	t.Run("bad date makes no call", func(t *testing.T) {
		h := newHarness(t, fakepolygon.Options{}, nil)
		if _, err := h.c.GroupedDaily(context.Background(), "2020-14-10"); err == nil || !retry.IsPermanent(err) || h.srv.Calls() != 0 {
			t.Fatalf("err %v after %d calls", err, h.srv.Calls())
		}
	})
}

// Against the local market: the grouped answer is what the market printed,
// OTC tickers included, and t of an early close's rows (13:00 New York)
// dates them right; a date before the plan's history is ErrOutsidePlan.
func TestGroupedDailyRawWithOTC(t *testing.T) {
	h := newHarness(t, fakepolygon.Options{Universe: []string{"AAPL"}, OTC: []string{"NSRGY"}, NoJunk: true, PlanFrom: "2024-01-02",
		Splits: []fakepolygon.Split{{Ticker: "AAPL", Date: "2025-06-02", From: 1, To: 4}}}, nil)
	day, err := h.c.GroupedDaily(context.Background(), "2024-11-29") // the day after Thanksgiving: 13:00
	if err != nil || len(day.Bars) != 2 {
		t.Fatalf("day %+v, %v", day, err)
	}
	raw, _ := h.srv.RawBars("AAPL", "2024-11-29", "2024-11-29")
	adj, _ := h.srv.Bars("AAPL", "2024-11-29", "2024-11-29")
	if b := day.Bars["AAPL"]; b.Close != raw[0].C || b.Close != adj[0].C*4 || b.Date != "2024-11-29" {
		t.Errorf("AAPL %+v, want the printed close %v (adjusted %v)", b, raw[0].C, adj[0].C)
	}
	if _, ok := day.Bars["NSRGY"]; !ok {
		t.Error("the OTC ticker is missing")
	}
	if _, err := h.c.GroupedDaily(context.Background(), "2023-12-29"); !errors.Is(err, marketdata.ErrOutsidePlan) || errors.Is(err, marketdata.ErrNotEntitled) {
		t.Errorf("before the plan's history: %v", err)
	}
	if _, err := h.c.DailyBars(context.Background(), "AAPL", "2023-12-01", "2024-01-31"); !errors.Is(err, marketdata.ErrOutsidePlan) {
		t.Errorf("per ticker before the plan's history: %v", err)
	}
}

func TestSplitsContract(t *testing.T) {
	h := newHarness(t, fakepolygon.Options{}, nil)
	h.srv.EnqueueFor(fakepolygon.Splits, recorded(t, 200, "splits/page1.json"), recorded(t, 200, "splits/page2.json"))
	splits, err := h.c.Splits(context.Background(), "2020-08-01", "2020-09-30")
	h.checkNoLeak(t, err)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range splits {
		got = append(got, s.Ticker+" "+s.ExecutionDate)
	}
	// The ids of testdata/splits/page1.json, kept for the ledger.
	if splits[0].ID != "E90a77bdf742661741ed7c8fc086415f0457c2816c45899d73aaa88bdc8ff6025" || splits[1].ID != "E36416cce743c3964c5da63e1ef1626c0aece30fb47302eea5a49c0055c04e8d" {
		t.Errorf("ids %q %q", splits[0].ID, splits[1].ID)
	}
	if !slices.Equal(got, []string{"AAPL 2020-08-31", "TSLA 2020-08-31", "NVDA 2020-09-21"}) || splits[0].Ratio() != 4 || splits[1].Ratio() != 5 {
		t.Errorf("splits %v (%+v)", got, splits)
	}
	reqs := h.srv.Requests()
	if len(reqs) != 2 || reqs[0].RequestURI != "/v3/reference/splits?execution_date.gte=2020-08-01&execution_date.lte=2020-09-30&limit=1000" {
		t.Fatalf("requests %+v", reqs)
	}
	if strings.Contains(strings.ToLower(reqs[1].RawQuery), "apikey") || !strings.Contains(reqs[1].RawQuery, "cursor=") {
		t.Errorf("next_url followed as %s", reqs[1].RequestURI)
	}
	if n := strings.Count(h.logs.String(), "polygon: split entry skipped"); n != 3 {
		t.Errorf("%d skipped entries logged, want 3:\n%s", n, h.logs.String())
	}
}

func TestSplitsAgainstTheLocalMarket(t *testing.T) {
	h := newHarness(t, fakepolygon.Options{Splits: []fakepolygon.Split{{Ticker: "AAPL", Date: "2025-06-02", From: 1, To: 4}}}, nil)
	splits, err := h.c.Splits(context.Background(), "2025-06-01", "2025-06-30")
	if err != nil || len(splits) != 1 || splits[0] != (marketdata.Split{Ticker: "AAPL", ExecutionDate: "2025-06-02", From: 1, To: 4, ID: "E1"}) {
		t.Fatalf("splits %+v, %v", splits, err)
	}
	if _, err := h.c.Splits(context.Background(), "2025-06-30", "2025-06-01"); err == nil || !retry.IsPermanent(err) {
		t.Errorf("reversed range: %v", err)
	}
}
