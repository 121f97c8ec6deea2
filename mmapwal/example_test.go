package mmapwal_test

import (
	"encoding/json"
	"fmt"
	"log"
	"os"

	"github.com/mmapwal/wal/mmapwal"
)

// Raw byte records written, then replayed after a reopen.
func Example() {
	dir, _ := os.MkdirTemp("", "mmapwal-example-")
	defer os.RemoveAll(dir)

	w, err := mmapwal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range []string{"first", "second", "third"} {
		if _, err := w.Append([]byte(s)); err != nil {
			log.Fatal(err)
		}
	}
	w.Close()

	w, err = mmapwal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	w.Replay(w.FirstSeq(), func(seq uint64, data []byte) error {
		fmt.Println(seq, string(data))
		return nil
	})
	// Output:
	// 1 first
	// 2 second
	// 3 third
}

// A key-value store: JSON operations are logged, then replayed into a map on
// restart.
func Example_keyValueStore() {
	type op struct {
		Op, Key, Value string
	}
	dir, _ := os.MkdirTemp("", "mmapwal-example-")
	defer os.RemoveAll(dir)

	w, _ := mmapwal.Open(dir, nil)
	for _, o := range []op{{"CREATE", "a", "1"}, {"CREATE", "b", "2"}, {"UPDATE", "a", "3"}, {"DELETE", "b", ""}} {
		b, _ := json.Marshal(o)
		if _, err := w.Append(b); err != nil {
			log.Fatal(err)
		}
	}
	w.Close()

	w, _ = mmapwal.Open(dir, nil) // restart
	defer w.Close()
	state := map[string]string{}
	w.Replay(0, func(seq uint64, data []byte) error {
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
	fmt.Println(state)
	// Output: map[a:3]
}

// ReadAppend reuses a buffer: no allocation per read.
func ExampleWAL_ReadAppend() {
	dir, _ := os.MkdirTemp("", "mmapwal-example-")
	defer os.RemoveAll(dir)
	w, _ := mmapwal.Open(dir, &mmapwal.Options{Sync: mmapwal.SyncNone})
	defer w.Close()
	w.Append([]byte("hello"))
	w.Append([]byte("world"))
	buf := make([]byte, 0, 64)
	for seq := w.FirstSeq(); seq <= w.LastSeq(); seq++ {
		buf, _ = w.ReadAppend(buf[:0], seq)
		fmt.Println(string(buf))
	}
	// Output:
	// hello
	// world
}
