package queue

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/fnv"
	"strconv"
	"time"
)

// MaxBatch is the most entries SQS accepts in one batch call.
const MaxBatch = 10

// MaxBatchBytes is the most SQS accepts in one SendMessageBatch call, all
// bodies together (256 KiB): a batch holding a day message is cut short.
const MaxBatchBytes = 256 * 1024

// Failure is a message SQS did not accept.
type Failure struct {
	// Ticker is the message's ticker, or its Label for a day message.
	Ticker string
	// Code and Message are SQS's, or "Unsent" when attempts or time ran out.
	Code, Message string
	// SenderFault is SQS's verdict that the entry itself is wrong (not retried).
	SenderFault bool
}

// Result counts the outcome of Publish.
type Result struct {
	// Queued is the number of messages SQS accepted.
	Queued int
	// Batches is the number of SendMessageBatch calls made, re-sends included.
	Batches int
	// Failed lists the messages not queued.
	Failed []Failure
}

// GroupID is the FIFO message group of a ticker: "tickers" with one group,
// else "tickers-<i>" with i the FNV-1a hash of the ticker modulo groups.
func GroupID(ticker string, groups int) string {
	if groups <= 1 {
		return "tickers"
	}
	h := fnv.New32a()
	h.Write([]byte(ticker))
	return "tickers-" + strconv.Itoa(int(h.Sum32()%uint32(groups)))
}

// DeduplicationID is the FIFO de-duplication id of a message: the hex SHA-256
// of runId + "/" + ticker, so a retried run with the same id does not queue a
// ticker twice within SQS's five-minute window.
func DeduplicationID(runID, ticker string) string {
	return sha256Hex(runID + "/" + ticker)
}

// DeduplicationID is the FIFO de-duplication id of m: DeduplicationID(RunID,
// Ticker) as processTickers sends a ticker message (Attempt 0), else the hex
// SHA-256 of runId + "/" + ticker + "/" + attempt, so that each re-queued
// copy is new to SQS while a repeated send of the same copy is not. A day
// message's is the SHA-256 of runId + "/#day/" + its part key, a fill
// message's of runId + "/#fill/" + group + "/" + session (and "/" + attempt).
func (m Message) DeduplicationID() string {
	name := m.Ticker
	switch {
	case m.IsDay():
		name = "#day/" + m.PartKey()
	case m.IsFill():
		name = "#fill/" + m.Group + "/" + m.Date
	}
	if m.Attempt == 0 {
		return DeduplicationID(m.RunID, name)
	}
	return sha256Hex(m.RunID + "/" + name + "/" + strconv.Itoa(m.Attempt))
}

// GroupOf is the FIFO message group of m: a day or fill message's own, else
// GroupID(m.Ticker, groups).
func (m Message) GroupOf(groups int) string {
	if m.IsMarket() {
		return m.Group
	}
	return GroupID(m.Ticker, groups)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// VisibilityChange sets how long a received message stays hidden from now
// (0: visible at once).
type VisibilityChange struct {
	ReceiptHandle string
	Timeout       time.Duration
}
