package deploy

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ScheduleTimeZone is the IANA zone of every schedule: the market's clock,
// through daylight saving time.
const ScheduleTimeZone = "America/New_York"

// Schedule is one EventBridge Scheduler schedule: when it fires, in
// ScheduleTimeZone, and what it sends to which function. The stack creates
// it; `zsm run` plays the night in the order and at the times the schedules
// give. No schedule may fall in 02:00–02:59, which daylight saving time skips
// or repeats (a test holds them to it).
type Schedule struct {
	// ID is the construct id.
	ID string
	// Suffix follows the target's function name in the schedule's name.
	Suffix string
	// Target is the function invoked.
	Target Function
	// Hour and Minute of the firing, in ScheduleTimeZone.
	Hour, Minute int
	// From and To are the first and last weekday of the firing (a range
	// within one week, such as Monday to Friday).
	From, To time.Weekday
	// Input is the JSON event sent, for a schedule without a portfolio.
	Input string
	// PortfolioInput: the event names the portfolio to analyze,
	// {"portfolio_name": …}: the stage's context analysisPortfolio
	// (DefaultScheduledAnalysis, every portfolio, by default).
	PortfolioInput bool
	// Description is the schedule's.
	Description string
}

// The schedules of the service.
var (
	// NightlyTickers queues every held ticker after the US close, after the
	// provider has published the day. {} asks processTickers for a full
	// scan: explicit, because without an input the Scheduler sends an
	// undocumented default notification, and aws-lambda-go fails an empty
	// payload before the handler runs.
	NightlyTickers = Schedule{
		ID: "ProcessTickersSchedule", Target: ProcessTickers,
		Hour: 21, Minute: 30, From: time.Monday, To: time.Friday, Input: `{}`,
		Description: "Queue every held ticker after the US close",
	}
	// CatchUp queues what the night still lacks (the day when it was not
	// published at the first run, the tickers without a row of the day);
	// a ticker whose row is stored costs nothing
	// (docs/decisions/0002-stored-daily-history.md). Before the analysis.
	CatchUp = Schedule{
		ID: "CatchUpSchedule", Suffix: "-catch-up", Target: ProcessTickers,
		Hour: 23, Minute: 30, From: time.Monday, To: time.Friday, Input: `{"catchUp":true}`,
		Description: "Queue what the night still lacks: the day if not published yet, tickers without a row",
	}
	// NightlyAnalysis analyzes the portfolios the morning after each
	// trading day.
	NightlyAnalysis = Schedule{
		ID: "AnalyzePortfolioSchedule", Target: AnalyzePortfolio,
		Hour: 1, Minute: 0, From: time.Tuesday, To: time.Saturday, PortfolioInput: true,
		Description: "Analyze the portfolio the morning after each trading day",
	}
)

// Schedules lists the schedules in the order they fire in a night.
var Schedules = []Schedule{NightlyTickers, CatchUp, NightlyAnalysis}

// ScheduleName is the schedule's name in a stage, e.g.
// "zsm-processTickers-dev-catch-up".
func (s Schedule) ScheduleName(stage string) string { return s.Target.FunctionName(stage) + s.Suffix }

var cronDays = [...]string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}

// Expression is the Scheduler's cron expression, e.g.
// "cron(30 21 ? * MON-FRI *)".
func (s Schedule) Expression() string {
	return fmt.Sprintf("cron(%d %d ? * %s-%s *)", s.Minute, s.Hour, cronDays[s.From], cronDays[s.To])
}

// At is the firing time of day, e.g. "21:30".
func (s Schedule) At() string { return fmt.Sprintf("%02d:%02d", s.Hour, s.Minute) }

// Days are the weekdays of the firing, for people: "weekdays" (Monday to
// Friday) or a range such as "Tue-Sat".
func (s Schedule) Days() string {
	if s.From == time.Monday && s.To == time.Friday {
		return "weekdays"
	}
	short := func(d time.Weekday) string { return d.String()[:3] }
	return short(s.From) + "-" + short(s.To)
}

// Payload is the event the schedule sends, portfolio naming the portfolio
// to analyze for a schedule with PortfolioInput ("*": every one).
func (s Schedule) Payload(portfolio string) string {
	if !s.PortfolioInput {
		return s.Input
	}
	b, err := json.Marshal(map[string]string{"portfolio_name": portfolio})
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	return string(b)
}

// fires reports whether the schedule fires on weekday d.
func (s Schedule) fires(d time.Weekday) bool {
	if s.From <= s.To {
		return d >= s.From && d <= s.To
	}
	return d >= s.From || d <= s.To
}

// Next is the first firing strictly after t, in loc (the schedule's zone).
func (s Schedule) Next(t time.Time, loc *time.Location) time.Time {
	t = t.In(loc)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
	for i := 0; i <= 7; i++ {
		d := day.AddDate(0, 0, i)
		at := time.Date(d.Year(), d.Month(), d.Day(), s.Hour, s.Minute, 0, 0, loc)
		if at.After(t) && s.fires(d.Weekday()) {
			return at
		}
	}
	panic("deploy: schedule " + s.ID + " never fires") // From..To always holds a day
}

// Night is the schedules of the night that follows a trading day's close
// (16:00 in loc, ScheduleTimeZone), each with its first firing after it,
// in firing order: what production runs for that day.
func Night(tradingDay time.Time, loc *time.Location) []Firing {
	d := tradingDay.In(loc)
	closeAt := time.Date(d.Year(), d.Month(), d.Day(), 16, 0, 0, 0, loc)
	out := make([]Firing, 0, len(Schedules))
	for _, s := range Schedules {
		out = append(out, Firing{Schedule: s, At: s.Next(closeAt, loc)})
	}
	for i := 1; i < len(out); i++ { // insertion sort: three items
		for j := i; j > 0 && out[j].At.Before(out[j-1].At); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// Firing is a schedule and when it fires.
type Firing struct {
	Schedule
	At time.Time
}

// Describe says, for people, when each schedule of a night fires, e.g.
// "processTickers at 21:30, processTickers-catch-up at 23:30, analyzePortfolio
// at 01:00 the morning after".
func Describe(night []Firing) string {
	parts := make([]string, 0, len(night))
	for i, f := range night {
		p := f.Target.Name + f.Suffix + " at " + f.At.Format("15:04")
		if i > 0 && f.At.Format(time.DateOnly) != night[0].At.Format(time.DateOnly) {
			p += " the morning after"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}
