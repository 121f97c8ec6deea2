// Command raw writes raw byte records to a WAL, closes it, reopens it and
// replays them: the smallest complete use of mmapwal.
//
//	go run ./examples/raw -dir /tmp/raw-wal
package main

import (
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/mmapwal/wal/mmapwal"
)

func main() {
	dir := flag.String("dir", "", "WAL directory (default: a new temporary directory)")
	n := flag.Int("n", 5, "records to write")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "mmapwal-raw-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}

	w, err := mmapwal.Open(*dir, nil) // defaults: 64 MiB segments, SyncAlways
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < *n; i++ {
		seq, err := w.Append([]byte(fmt.Sprintf("event %d", i)))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("appended seq %d (durable: SyncAlways returned after the flush)\n", seq)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	// A restart: reopen and replay everything.
	w, err = mmapwal.Open(*dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	fmt.Printf("reopened %s: FirstSeq=%d LastSeq=%d (recovery scanned %d bytes)\n",
		*dir, w.FirstSeq(), w.LastSeq(), w.Stats().Recovery.ScannedBytes)
	err = w.Replay(w.FirstSeq(), func(seq uint64, data []byte) error {
		fmt.Printf("replayed %d: %s\n", seq, data)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}
