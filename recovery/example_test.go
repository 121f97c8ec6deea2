package recovery_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/mmapwal"
	"github.com/mmapwal/wal/recovery"
)

// Repair gets a log with real damage (here, a flipped bit in record 2 of 5,
// which later records prove had been synced) open again: it cuts the log
// at the damage, keeps a copy of the damaged segment aside, and reports
// what it dropped.
func ExampleRepair() {
	dir, err := os.MkdirTemp("", "mmapwal-repair-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	w, err := mmapwal.Open(dir, &mmapwal.Options{SegmentSize: mmapwal.MinSegmentSize})
	if err != nil {
		log.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := w.Append(fmt.Appendf(nil, "record %d", i)); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	// Damage one payload byte of record 2 (records are 8 bytes: each frame
	// takes format.FrameSize(8) bytes after the segment header).
	seg := filepath.Join(dir, format.SegmentName(1))
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		log.Fatal(err)
	}
	off := format.SegmentHeaderSize + format.FrameSize(8) + format.FrameHeaderSize
	if _, err := f.WriteAt([]byte{'X'}, off); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}

	// Without Full, Recover trusts the index checkpoints and would not
	// look at record 2; Repair always verifies every record.
	_, err = recovery.Recover(dir, &recovery.Options{ReadOnly: true, Full: true})
	fmt.Println("corrupt:", errors.Is(err, format.ErrCorrupt))

	rep, err := recovery.Repair(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("damaged:", rep.Damaged, "log now ends before seq", rep.Seq)
	fmt.Println("records dropped:", rep.RecordsDropped, "files kept aside:", len(rep.MovedAside))

	w, err = mmapwal.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first, last:", w.FirstSeq(), w.LastSeq())
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// corrupt: true
	// damaged: true log now ends before seq 2
	// records dropped: 3 files kept aside: 1
	// first, last: 1 1
}
