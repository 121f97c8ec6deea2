// Package mmapwal is a write-ahead log built from preallocated,
// memory-mapped segment files, with a per-segment offset index so that
// Read(seq) costs a few loads. It is meant to sit under databases, queues
// and raft implementations: an acknowledged record is never lost (within its
// sync policy, below), a read never returns wrong bytes, and a damaged file
// gives an error naming the file, offset and seq instead of a panic.
//
// Records are byte slices numbered with consecutive sequence numbers (seqs)
// from Options.FirstSeq (default 1). A log is a directory of segment files;
// Open creates it, or recovers it after a crash. One process at a time may
// open a directory for writing (a second Open fails with ErrLocked); any
// number may open it read-only beside it.
//
// # Example
//
//	w, err := mmapwal.Open("/var/lib/app/wal", &mmapwal.Options{Sync: mmapwal.SyncAlways})
//	if err != nil {
//		return err
//	}
//	defer w.Close()
//
//	seq, err := w.Append([]byte("event")) // durable when it returns (SyncAlways)
//	if err != nil {
//		return err
//	}
//	first, err := w.AppendBatch([][]byte{[]byte("a"), []byte("b")}) // all or nothing after a crash
//	if err != nil {
//		return err
//	}
//	data, err := w.Read(seq) // a copy; ErrNotFound outside [FirstSeq, LastSeq]
//	if err != nil {
//		return err
//	}
//	err = w.Replay(0, func(seq uint64, data []byte) error { // 0: from FirstSeq
//		return apply(seq, data) // data is valid only during the call
//	})
//	if err != nil {
//		return err
//	}
//	err = w.TruncateFront(first) // drop what a snapshot covers
//
// The runnable examples below cover each sync policy, batches, a follower,
// truncation, and package recovery's Repair.
//
// # Sync policies and what survives what
//
// Under every policy Append returns only after its record, and every record
// with a lower seq, is complete in the shared mapping: the kernel's page
// cache holds it, so a crash of the process (kill -9, a panic, an os.Exit)
// never loses an acknowledged record under any policy. What a power loss or
// kernel crash keeps depends on Options.Sync:
//
//   - SyncAlways (the default): Append returns once its record is durable
//     (msync or fdatasync of the written range, and a directory sync for a
//     new segment). Concurrent appenders share one sync (group commit).
//     Power loss loses nothing acknowledged.
//   - SyncPeriodic: a background flush runs every Options.SyncInterval.
//     Power loss may lose the records appended since the last flush.
//   - SyncNone: records become durable only through Sync, Close or
//     TruncateBack. Power loss may lose everything since the last of those.
//
// Whatever is lost is always a suffix: after any crash Open finds a
// gapless prefix of the acknowledged records, ending at a complete record or
// batch (an AppendBatch is all or nothing). Open cuts a torn tail (bytes of
// records that never became durable) and reports it in Stats().Recovery; it
// refuses with ErrCorrupt, changing nothing, damage that cannot be a torn
// tail (a bad record followed by proof that it had been synced). Package
// recovery's Repair gets such a log open again, keeping a copy of what it
// cuts.
//
// A failed sync is sticky: every later write fails with it (the kernel may
// have dropped the pages it could not write), while reads go on working;
// reopening recovers.
//
// # Readers and followers
//
// Read and ReadAppend return one record; Replay and a Reader (NewReader)
// iterate in seq order; Reader.All is the same as a Go iterator. Readers take
// no lock against appenders. A Reader at the end of the log is a follower:
// Reader.Wait blocks until a record is appended (woken by the append itself,
// without polling), the context is done, the WAL is closed, or the Reader
// can no longer continue: records it returned were cut by TruncateBack
// (ErrTruncated: resynchronise) or its position was dropped by TruncateFront
// or retention (ErrNotFound). Any number of followers may wait; each sees
// every record once, in order.
//
// # Read-only access
//
// Open with Options.ReadOnly inspects a log that another process may be
// writing, as dump tools do: it takes no lock and never creates, changes or
// deletes a file. Read, ReadAppend, NewReader, Replay, FirstSeq, LastSeq,
// Stats and Close work; write methods return ErrReadOnly. The view follows
// the writer's appends, rotations and truncations, and never returns a
// record that is no longer in the log when the read begins. Reader.Wait on
// a read-only WAL looks for the writer's new records every ROPollInterval
// while it waits. A crashed log opens read-only showing its valid prefix,
// with what recovery would cut reported in Stats().Recovery and nothing
// repaired.
//
// # Files
//
// Files are created with Options.FileMode (default 0600) and a new directory
// with Options.DirMode (default 0700): a log usually holds a database's
// contents. The on-disk format is documented in package format; packages
// index, platform and recovery are the building blocks Open uses, public for
// tools. The concurrency design (locks, their order, goroutines) is
// described in DESIGN.md beside this file.
package mmapwal
