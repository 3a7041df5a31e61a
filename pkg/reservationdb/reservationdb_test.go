package reservationdb_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/zsmseven/backend/internal/devstack/dynalite/dynalitetest"
	"github.com/zsmseven/backend/pkg/deploy"
	"github.com/zsmseven/backend/pkg/reservationdb"
)

func TestMain(m *testing.M) { dynalitetest.Main(m) }

func store(t *testing.T, now *time.Time) *reservationdb.Store {
	env := dynalitetest.New(t, deploy.AnalysisReservations)
	s := reservationdb.New(env.Client, deploy.AnalysisReservations.Name(env.Stage))
	s.Now = func() time.Time { return *now }
	return s
}

func res(key, owner string, lease time.Time) reservationdb.Reservation {
	return reservationdb.Reservation{Key: key, Portfolio: "P", DataAsOf: "2026-11-27", Owner: owner, LeaseUntil: lease,
		CreatedAt: lease.Add(-5 * time.Minute), ExpiresAt: lease.Add(7 * 24 * time.Hour)}
}

func TestKeyOf(t *testing.T) {
	assert.Len(t, reservationdb.KeyOf("a", "b"), 64)
	assert.NotEqual(t, reservationdb.KeyOf("ab", "c"), reservationdb.KeyOf("a", "bc"), "parts are delimited")
	assert.Equal(t, reservationdb.KeyOf("a", "b"), reservationdb.KeyOf("a", "b"))
}

func TestReserveCompleteRelease(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	s := store(t, &now)
	lease := now.Add(5 * time.Minute)

	got, won, err := s.Reserve(ctx, res("k1", "run-a", lease))
	require.NoError(t, err)
	require.True(t, won)
	assert.Equal(t, reservationdb.StatePending, got.State)

	held, won, err := s.Reserve(ctx, res("k1", "run-b", lease))
	require.NoError(t, err)
	assert.False(t, won, "a live lease is not taken")
	assert.Equal(t, "run-a", held.Owner)
	assert.Equal(t, lease, held.LeaseUntil)

	// run-b cannot complete or release what it does not hold.
	r := held
	r.Owner, r.Analysis, r.Status = "run-b", "2026-11-28T06:01:00.000Z", "ok"
	assert.ErrorIs(t, s.Complete(ctx, r), reservationdb.ErrNotOwner)
	assert.ErrorIs(t, s.Release(ctx, "k1", "run-b"), reservationdb.ErrNotOwner)

	// The lease runs out: run-b takes over.
	now = lease.Add(time.Second)
	got, won, err = s.Reserve(ctx, res("k1", "run-b", now.Add(5*time.Minute)))
	require.NoError(t, err)
	require.True(t, won, "an expired lease is taken over")
	assert.ErrorIs(t, s.Complete(ctx, reservationdb.Reservation{Key: "k1", Owner: "run-a", LeaseUntil: lease}), reservationdb.ErrNotOwner,
		"the dead owner lost it")

	got.Analysis, got.Status = "2026-11-28T06:06:00.000Z", "ok"
	require.NoError(t, s.Complete(ctx, got))
	done, ok, err := s.Get(ctx, "k1")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, reservationdb.StateDone, done.State)
	assert.Equal(t, "2026-11-28T06:06:00.000Z", done.Analysis)

	// A done reservation is never taken over, lease or not.
	now = now.Add(time.Hour)
	held, won, err = s.Reserve(ctx, res("k1", "run-c", now.Add(5*time.Minute)))
	require.NoError(t, err)
	assert.False(t, won)
	assert.Equal(t, reservationdb.StateDone, held.State)

	// Released: the next run may reserve.
	_, won, err = s.Reserve(ctx, res("k2", "run-d", now.Add(time.Minute)))
	require.NoError(t, err)
	require.True(t, won)
	require.NoError(t, s.Release(ctx, "k2", "run-d"))
	_, won, err = s.Reserve(ctx, res("k2", "run-e", now.Add(time.Minute)))
	require.NoError(t, err)
	assert.True(t, won)
}

// Many runs reserving the same key at once against dynalite: exactly one
// wins, every other sees it as the holder.
func TestReserveConcurrently(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)
	s := store(t, &now)
	var wins atomic.Int32
	var wg sync.WaitGroup
	owners := make([]string, 16)
	for i := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			held, won, err := s.Reserve(ctx, res("same", fmt.Sprintf("run-%d", i), now.Add(time.Minute)))
			if !assert.NoError(t, err) {
				return
			}
			if won {
				wins.Add(1)
			}
			owners[i] = held.Owner
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
	for _, o := range owners {
		assert.Equal(t, owners[0], o, "everyone agrees on the holder")
	}
}
