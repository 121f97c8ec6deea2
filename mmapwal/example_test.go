package mmapwal_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/mmapwal/wal/mmapwal"
)

// tempDir returns a fresh directory for an example and a function that
// removes it.
func tempDir() (string, func()) {
	dir, err := os.MkdirTemp("", "mmapwal-example-")
	if err != nil {
		log.Fatal(err)
	}
	return dir, func() { os.RemoveAll(dir) }
}

// Raw byte records written, then replayed after a reopen.
func Example() {
	dir, cleanup := tempDir()
	defer cleanup()

	w, err := mmapwal.Open(dir, nil) // nil: defaults (SyncAlways)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range []string{"first", "second", "third"} {
		if _, err := w.Append([]byte(s)); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	w, err = mmapwal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	err = w.Replay(w.FirstSeq(), func(seq uint64, data []byte) error {
		fmt.Println(seq, string(data))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 1 first
	// 2 second
	// 3 third
}

// Open with Options, under each sync policy. SyncAlways: Append returns once
// the record is durable. SyncPeriodic: a background sync every SyncInterval.
// SyncNone: durable only after Sync, Close or TruncateBack. Under all three
// a record survives a crash of the process once Append returned.
func ExampleOpen() {
	for _, policy := range []mmapwal.SyncPolicy{mmapwal.SyncAlways, mmapwal.SyncPeriodic, mmapwal.SyncNone} {
		dir, cleanup := tempDir()
		w, err := mmapwal.Open(dir, &mmapwal.Options{
			SegmentSize:  mmapwal.MinSegmentSize, // small files for the example
			Sync:         policy,
			SyncInterval: 10 * time.Millisecond, // used by SyncPeriodic only
			FirstSeq:     100,
		})
		if err != nil {
			log.Fatal(err)
		}
		seq, err := w.Append([]byte("event"))
		if err != nil {
			log.Fatal(err)
		}
		if policy != mmapwal.SyncAlways {
			// Make it durable now rather than at the next background sync
			// (SyncPeriodic) or at Close (SyncNone).
			if err := w.Sync(); err != nil {
				log.Fatal(err)
			}
		}
		fmt.Println(policy, seq, w.Stats().SyncedSeq)
		if err := w.Close(); err != nil {
			log.Fatal(err)
		}
		cleanup()
	}
	// Output:
	// SyncAlways 100 100
	// SyncPeriodic 100 100
	// SyncNone 100 100
}

// AppendBatch appends records atomically: after a crash all of them are in
// the log, or none.
func ExampleWAL_AppendBatch() {
	dir, cleanup := tempDir()
	defer cleanup()
	w, err := mmapwal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	first, err := w.AppendBatch([][]byte{[]byte("debit a"), []byte("credit b")})
	if err != nil {
		log.Fatal(err)
	}
	for seq := first; seq <= w.LastSeq(); seq++ {
		data, err := w.Read(seq)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(seq, string(data))
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 1 debit a
	// 2 credit b
}

// A follower: a Reader at the end of the log waits for records as they
// are appended, in another goroutine, without polling.
func ExampleReader_Wait() {
	dir, cleanup := tempDir()
	defer cleanup()
	w, err := mmapwal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	r, err := w.NewReader(w.LastSeq() + 1) // the tail: nothing to read yet
	if err != nil {
		log.Fatal(err)
	}

	got := make(chan string)
	errc := make(chan error, 1)
	go func() {
		defer close(got)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for n := 0; n < 3; {
			if err := r.Wait(ctx); err != nil {
				errc <- err // ctx.Err(), ErrClosed, ErrTruncated or ErrNotFound
				return
			}
			for seq, rec := range r.All() {
				got <- fmt.Sprintf("%d %s", seq, rec) // rec is valid until the next iteration
				n++
			}
			if err := r.Err(); err != nil {
				errc <- err
				return
			}
		}
	}()

	for _, s := range []string{"a", "b", "c"} {
		if _, err := w.Append([]byte(s)); err != nil {
			log.Fatal(err)
		}
	}
	for line := range got {
		fmt.Println(line)
	}
	select {
	case err := <-errc:
		log.Fatal(err)
	default:
	}
	if err := r.Close(); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 1 a
	// 2 b
	// 3 c
}

// TruncateFront drops the records a snapshot covers; the rest keep their
// seqs.
func ExampleWAL_TruncateFront() {
	dir, cleanup := tempDir()
	defer cleanup()
	w, err := mmapwal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := w.Append(fmt.Appendf(nil, "op %d", i)); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.TruncateFront(4); err != nil { // a snapshot covers 1..3
		log.Fatal(err)
	}
	fmt.Println(w.FirstSeq(), w.LastSeq())
	if _, err := w.Read(2); !errors.Is(err, mmapwal.ErrNotFound) {
		log.Fatalf("Read(2) after TruncateFront(4): %v", err)
	}
	data, err := w.Read(4)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(data))
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// 4 5
	// op 4
}

// A key-value store: JSON operations are logged, then replayed into a map on
// restart.
func Example_keyValueStore() {
	type op struct {
		Op, Key, Value string
	}
	dir, cleanup := tempDir()
	defer cleanup()

	w, err := mmapwal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range []op{{"CREATE", "a", "1"}, {"CREATE", "b", "2"}, {"UPDATE", "a", "3"}, {"DELETE", "b", ""}} {
		b, err := json.Marshal(o)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := w.Append(b); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	w, err = mmapwal.Open(dir, nil) // restart
	if err != nil {
		log.Fatal(err)
	}
	state := map[string]string{}
	err = w.Replay(0, func(seq uint64, data []byte) error {
		var o op
		if err := json.Unmarshal(data, &o); err != nil {
			return err
		}
		switch o.Op {
		case "CREATE", "UPDATE":
			state[o.Key] = o.Value
		case "DELETE":
			delete(state, o.Key)
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(state)
	// Output: map[a:3]
}

// ReadAppend reuses a buffer: no allocation per read.
func ExampleWAL_ReadAppend() {
	dir, cleanup := tempDir()
	defer cleanup()
	w, err := mmapwal.Open(dir, &mmapwal.Options{Sync: mmapwal.SyncNone})
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range []string{"hello", "world"} {
		if _, err := w.Append([]byte(s)); err != nil {
			log.Fatal(err)
		}
	}
	buf := make([]byte, 0, 64)
	for seq := w.FirstSeq(); seq <= w.LastSeq(); seq++ {
		buf, err = w.ReadAppend(buf[:0], seq)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(buf))
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// hello
	// world
}
