package polygon_test

import (
	"context"
	"fmt"
	"time"

	"github.com/zsmseven/backend/internal/devstack/fakepolygon"
	"github.com/zsmseven/backend/pkg/pacing"
	"github.com/zsmseven/backend/pkg/polygon"
)

// The service builds its client once per cold start: the base URL from
// POLYGON_BASE_URL, the rate from POLYGON_CALLS_PER_MINUTE, the key from
// stage's secret (pkg/app/processticker).
// Here a local Polygon stands in for the real one.
func Example() {
	srv := fakepolygon.Start(fakepolygon.Options{Key: "demo-key"})
	defer srv.Close()

	pacer := pacing.New(600, pacing.Options{})
	c, err := polygon.New(polygon.Options{
		BaseURL: srv.URL,
		APIKey:  polygon.StaticKey("demo-key"),
		// The free plan is deploy.DefaultPolygonCallsPerMinute; 600 a minute
		// here keeps the example fast.
		Pacer: pacer,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pacer.Drain() // at the start of each invocation: the first call waits one interval (0.1 s here)
	bars, err := c.DailyBars(ctx, "aapl", "2025-01-06", "2025-01-10")
	if err != nil {
		fmt.Println(err)
		return
	}
	// 2025-01-09 is absent: the NYSE closed for the National Day of Mourning.
	for _, b := range bars {
		fmt.Println(b.Date)
	}
	fmt.Println("HTTP requests:", c.Calls())
	// Output:
	// 2025-01-06
	// 2025-01-07
	// 2025-01-08
	// 2025-01-10
	// HTTP requests: 1
}
