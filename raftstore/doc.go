// Package raftstore is a hashicorp/raft log store and stable store on
// mmapwal.
//
//	store, err := raftstore.Open(dir, nil) // SyncAlways
//	r, err := raft.NewRaft(conf, fsm, store, store, snapshots, transport)
//
// *Store implements raft.LogStore, raft.StableStore, raft.MonotonicLogStore
// and raft.CommitTrackingLogStore. Pass it to raft directly: wrapping it in
// raft.NewLogCache hides CommitTrackingLogStore (raft v1.8.0's LogCache
// does not forward it), so Config.RestoreCommittedLogs would then fail
// with raft.ErrIncompatibleLogStore.
//
// # Layout
//
// dir/log is an mmapwal log holding one record per raft entry; dir/stable
// is a second, tiny mmapwal log (64 KiB segments, always SyncAlways) for
// the StableStore, in which every record is the whole key/value map after a
// Set; Open reads only its last record, and records before the newest are
// dropped every 256 Sets.
//
// # Index mapping
//
// Raft index = WAL seq + offset (mod 2^64). Every record carries its raft
// index, so the offset is not stored anywhere: Open reads the first record
// to derive it and checks the last record agrees. An empty store has no
// offset; the first StoreLogs into it sets one from the seq the WAL
// assigns, which is what lets an empty store (new, or emptied by
// DeleteRange) start at any index, lower or higher than before, with no
// extra sync. mmapwal's Options.FirstSeq is therefore not needed (and is
// ignored); Options.MaxSegments must stay 0 because raft alone decides what
// is deleted.
//
// # Operations
//
//   - StoreLogs = one mmapwal AppendBatch: all or nothing after a crash,
//     durable on return under SyncAlways (the default). Indexes must be
//     contiguous with each other and with LastIndex (ErrNotContiguous).
//   - DeleteRange of a prefix = TruncateFront(seq of max+1); of a suffix =
//     TruncateBack(seq of min-1); of everything = TruncateFront(LastSeq+1),
//     which empties the log durably (wal.meta). A range strictly inside the
//     log is ErrMiddleRange (raft never asks for one).
//   - GetLog, FirstIndex and LastIndex read an immutable view published
//     with an atomic pointer after each successful change, and never wait
//     for a writer's sync. GetLog checks the index stored in the record.
//
// # Commit index (CommitTrackingLogStore)
//
// StageCommitIndex only remembers the value. The next StoreLogs writes it
// into every record of its batch, so it is persisted atomically with that
// batch and never on its own, and whatever suffix a later DeleteRange cuts,
// the last remaining record still carries a commit index. Open takes it from
// the last record; GetCommitIndex returns it capped at LastIndex (0 if none
// was ever staged, or the store is empty).
//
// # Record format (version 1)
//
// All integers little-endian; these constants are part of the on-disk
// format. The WAL frames and checksums each record.
//
//	offset size  field
//	0      1     version = 1
//	1      1     flags: 1 = commit index present, 2 = AppendedAt in UTC,
//	             4 = AppendedAt in another zone (offset and name follow)
//	2      1     raft.LogType
//	3      8     Index
//	11     8     Term
//	19     8     AppendedAt, seconds since 1970 (signed)
//	27     4     AppendedAt, nanoseconds [0, 1e9)
//	31     8     commit index                   (if flag 1)
//	..     var   zone offset (varint seconds), uvarint name length, name
//	                                            (if flag 4)
//	..     var   uvarint len(Data)+1 (0 = nil), Data
//	..     var   uvarint len(Extensions)+1 (0 = nil), Extensions
//
// Nothing may follow Extensions. Every field of raft.Log round-trips: nil
// and empty slices stay distinct; AppendedAt keeps its instant (the
// monotonic clock reading is not stored) and its location when that is
// time.Local or time.UTC (the zero time included); any other location comes
// back as a fixed zone with the same name and offset. An unknown version or
// flag is reported as mmapwal.ErrCorrupt naming the record, never skipped.
//
// The stable-store record: version byte 1, uvarint count, then per key in
// sorted order uvarint length, key, uvarint length, value. SetUint64 stores
// 8 bytes big-endian.
//
// # Concurrency
//
// Store.mu serialises the writers (StoreLogs, DeleteRange,
// StageCommitIndex, GetCommitIndex, Close) and guards the commit index
// fields; the view pointer is replaced only under it. stable.mu serialises
// Set. Readers take no lock. Store starts no goroutine of its own.
package raftstore
