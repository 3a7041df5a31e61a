// Package reliability is the fault-injection suite of the service. It holds
// no production code: its tests run the real use cases — processTickers
// publishing through the AWS SDK to the local SQS endpoint (package localsqs),
// processTicker consuming Lambda-shaped batches with the real Polygon client
// against the local Polygon (fakepolygon) and the real ticker-data store on
// dynalite, analyzePortfolio against the local xAI (fakexai) — while faults
// are injected: every Polygon and xAI error class, dynalite stopped in the
// middle of a batch and restarted, a message delivered twice, poison
// messages, an invocation deadline about to expire.
//
// Every scenario asserts the invariant with counts: each queued message ends
// written exactly once for its trading day, or recorded as a permanent
// failure, or handed back to the queue (still queued, or in the dead-letter
// queue) — queued = written + permanent + handed back, nothing lost, nothing
// duplicated — and no handler panics. All logs are captured and must never
// contain either API key.
//
// `make reliability` runs the suite with RELIABILITY_REPORT set, which makes
// it write the scenario table to that file (docs/reliability.md).
package reliability
