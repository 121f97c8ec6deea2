package mmapwal

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMapCacheConcurrentEviction: with one mapped sealed segment allowed,
// nearly every read maps a segment and evicts another, while an appender
// rotates, a Reader streams, Sync runs and TruncateFront drops segments.
// Every record returned must be exact (under -race: no access to an
// unmapped segment or its index).
func TestMapCacheConcurrentEviction(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncNone, SyncPeriodic, SyncAlways} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			w, err := Open(dir, &Options{SegmentSize: MinSegmentSize, Sync: policy, MaxMappedSegments: 1})
			require.NoError(t, err)
			defer w.Close()
			const total = 800 // about 100 segments
			for i := uint64(1); i <= 100; i++ {
				_, err := w.Append(smallRecord(i))
				require.NoError(t, err)
			}
			var done atomic.Bool
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			report := func(err error) {
				select {
				case errs <- err:
				default:
				}
			}
			wg.Add(1)
			go func() { // appender
				defer wg.Done()
				defer done.Store(true)
				for i := uint64(101); i <= total; i++ {
					if _, err := w.Append(smallRecord(i)); err != nil {
						report(err)
						return
					}
					if i%200 == 0 {
						if err := w.Sync(); err != nil {
							report(err)
						}
						if err := w.TruncateFront(i / 4); err != nil {
							report(err)
						}
					}
				}
			}()
			for g := 0; g < 2; g++ {
				wg.Add(1)
				go func(g int) { // random readers
					defer wg.Done()
					rng := rand.New(rand.NewSource(int64(g)))
					var buf []byte
					for !done.Load() {
						first, last := w.FirstSeq(), w.LastSeq()
						seq := first + uint64(rng.Int63n(int64(last-first+1)))
						b, err := w.ReadAppend(buf[:0], seq)
						if errors.Is(err, ErrNotFound) {
							continue // truncated meanwhile
						}
						if err != nil {
							report(err)
							return
						}
						if string(b) != string(smallRecord(seq)) {
							report(errors.New("wrong bytes"))
							return
						}
						buf = b
					}
				}(g)
			}
			wg.Add(1)
			go func() { // a streaming Reader from the start
				defer wg.Done()
				r, err := w.NewReader(0)
				if err != nil {
					report(err)
					return
				}
				defer r.Close()
				for !done.Load() {
					for r.Next() {
						if string(r.Value()) != string(smallRecord(r.Seq())) {
							report(errors.New("reader: wrong bytes"))
							return
						}
					}
					if r.Err() != nil {
						if errors.Is(r.Err(), ErrNotFound) {
							if r, err = w.NewReader(0); err != nil {
								report(err)
								return
							}
							continue
						}
						report(r.Err())
						return
					}
				}
			}()
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.NoError(t, w.Close())
			w, err = Open(dir, &Options{SegmentSize: MinSegmentSize, MaxMappedSegments: 1})
			require.NoError(t, err)
			for seq := w.FirstSeq(); seq <= w.LastSeq(); seq++ {
				b, err := w.Read(seq)
				require.NoError(t, err)
				require.Equal(t, smallRecord(seq), b)
			}
			require.Equal(t, uint64(total), w.LastSeq())
		})
	}
}

// smallRecord is record seq for the concurrency test: ~8 records a segment.
func smallRecord(seq uint64) []byte {
	b := make([]byte, 7<<10+int(seq%64))
	binary.LittleEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq) ^ byte(i)
	}
	return b
}
