// Package format defines mmapwal's on-disk format and its shared errors. It
// works on byte slices only and imports no file or mapping code, so that the
// index, recovery and mmapwal packages can all depend on it without depending
// on each other.
//
// All integers are little-endian. These constants and layouts are part of the
// on-disk format: changing any of them changes the bytes pinned by the golden
// files in testdata/ and needs a new Version.
//
// # Directory
//
//	00000000000000000001.seg   segment whose first record has seq 1
//	00000000000000000001.idx   offset index of that segment (a cache)
//	wal.meta                   logical first seq after TruncateFront (optional)
//	wal.id                     the log's identity (absent in logs written before identities)
//	wal.clean                  clean-close manifest (optional; see below)
//	LOCK                       held with an exclusive lock while open (with the directory itself on Unix)
//	*.tmp                      interrupted preparation or rename; removed on open
//
// # Segment file
//
// A segment is preallocated to its full size and starts with a 64-byte header.
// Frames follow back to back, each 8-byte aligned; unused space is zero.
//
//	0       8       12      16              24              32              40               60      64
//	+-------+-------+-------+---------------+---------------+---------------+----------------+-------+
//	| magic |version| flags |   first seq   |  segment ID   |    log ID     | reserved (zero)| CRC32C|
//	+-------+-------+-------+---------------+---------------+---------------+----------------+-------+
//	magic "MMWALSEG"; CRC32C (Castagnoli) of bytes [0,60).
//	The segment ID is random and non-zero, chosen when the file is prepared.
//	The log ID is the identity of the log (from wal.id): a segment whose log
//	ID is neither zero nor the log's is a file of another log, and opening
//	the log fails with ErrCorrupt naming it. Zero is a segment written before
//	identities existed (bytes [32,40) were reserved and zero): it is accepted
//	unchecked. Version stays 1: readers of the earlier layout ignore the
//	field, and the CRC covers it either way.
//
// # Frame
//
//	 0       4   5       8               16              24              32
//	 +-------+---+-------+---------------+---------------+---------------+---------+-------+
//	 | CRC32C|kind reserved|   length    |      seq      | durable seq   | payload | zero  |
//	 +-------+---+-------+---------------+---------------+---------------+---------+-------+
//	                                                                       length    pad to 8
//
//	CRC32C = crc32c(segment ID as 8 bytes ‖ header[4:32] ‖ payload)
//	kind: 1 full record, 2 first / 3 middle / 4 last record of an atomic batch.
//	      0 is never valid, so an all-zero header (preallocated space) is the end of the log.
//	durable seq: the highest seq known to be durable (synced) when this frame
//	      was reserved. A valid frame whose durable seq covers an earlier bad
//	      frame proves that the bad frame had been synced: recovery then
//	      reports corruption instead of cutting a torn tail.
//
// Mixing the segment ID into every CRC means bytes left from another segment
// (or another incarnation of this one) can never validate.
//
// # Index file
//
//	 0       8       12      16              24              32              40              48      52  60      64
//	 +-------+-------+-------+---------------+---------------+---------------+---------------+-------+---+-------+
//	 | magic |version| width |  segment ID   |   first seq   |     count     |  end offset   | flags |res| CRC32C|
//	 +-------+-------+-------+---------------+---------------+---------------+---------------+-------+---+-------+
//	 | entry 0 (uint32) | entry 1 | ...                                                    entries: frame offset / 8
//
//	magic "MMWALIDX"; width is 4. (count, end offset) is a checkpoint: the
//	first count records of the segment are complete and durable and end at
//	end offset. It is written only after the segment data it describes was
//	synced, so any version of it that reaches the disk is true. Entries at or
//	after count may be stale and are rebuilt by scanning from end offset.
//	flags bit 0 (closed): written by a clean Close; the segment holds only
//	zeros after end offset. A last segment without it had an unclean
//	shutdown, and recovery zeroes everything after its valid frames.
//	flags bit 1 (truncating): a TruncateBack to end offset was zeroing the
//	rest; recovery completes it.
//
// # Meta file (wal.meta, 32 bytes)
//
//	0       8       12      16              24      28      32
//	+-------+-------+-------+---------------+-------+-------+
//	| magic |version| zero  |   first seq   | zero  | CRC32C|
//	+-------+-------+-------+---------------+-------+-------+
//	magic "MMWALMET"; first seq is the logical first seq set by TruncateFront.
//	Written to a temporary file, synced and renamed over the old one.
//
// # Identity file (wal.id, 32 bytes)
//
//	0       8       12      16              24      28      32
//	+-------+-------+-------+---------------+-------+-------+
//	| magic |version| zero  |    log ID     | zero  | CRC32C|
//	+-------+-------+-------+---------------+-------+-------+
//	magic "MMWALLID"; log ID random and non-zero, chosen when the log is
//	created (or when a log written before identities is first opened). It
//	is written to a temporary file, synced, renamed and the directory synced
//	before the first segment carrying the ID is created, so the identity of
//	a log that has no segments (new, or emptied by TruncateFront) is kept.
//	If wal.id is missing while segments carry a log ID (e.g. a backup that
//	copied only *.seg and *.idx), the ID of the oldest such segment is
//	adopted and wal.id is written again.
//
// # Clean-close manifest (wal.clean, 36 + 104 per segment bytes)
//
//	0       8       12      16              24              32
//	+-------+-------+-------+---------------+---------------+
//	| magic |version| count |    log ID     | meta first seq|
//	+-------+-------+-------+---------------+---------------+
//	then count entries of 104 bytes each, in seq order, then the CRC32C
//	(4 bytes) of everything before it. An entry (every field 8 bytes):
//	0         8        16       24       32       40
//	+---------+--------+--------+--------+--------+
//	|first seq| seg ID |  size  | count  |  end   |
//	+---------+--------+--------+--------+--------+
//	40        48        56        64        72
//	+---------+---------+---------+---------+
//	| seg dev | seg ino |seg ctime|seg size |   segment file stamp
//	+---------+---------+---------+---------+
//	72        80        88        96        104
//	+---------+---------+---------+---------+
//	| idx dev | idx ino |idx ctime|idx size |   index file stamp
//	+---------+---------+---------+---------+
//	meta first seq is wal.meta's first seq at Close (0: no wal.meta);
//	ctime is in nanoseconds since the epoch.
//	magic "MMWALCLN". Close writes it (temporary file, sync, rename,
//	directory sync) after its final sync and before the last index's
//	closed checkpoint is synced. Each stamp is the (device, inode, ctime,
//	size) of the file as fstat'ed after its last sync; the last segment's
//	index stamp is zero: that index is checked by its content (a closed
//	checkpoint with this count, end and segment ID). The next Open trusts
//	it only if it decodes, its log ID and wal.meta's first seq match, the
//	directory holds exactly its segments and indexes (nothing else of the
//	log: no temporary file), every stamp matches, and the last segment's
//	analysis finds the closed checkpoint it describes; then the earlier
//	segments are taken as described without reading them (their headers
//	are checked when mapped). Anything else: it is ignored, never an
//	error. A read-write Open removes it (and syncs the directory) before
//	changing anything, so it never describes a log that changed.
package format
