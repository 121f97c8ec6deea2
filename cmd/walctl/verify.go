package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/recovery"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

const maxProblems = 100

func verifyCmd(e *env) *cobra.Command {
	var noProgress bool
	c := &cobra.Command{
		Use:   "verify DIR",
		Short: "Check every record's checksum and every structural rule (read-only)",
		Long: `Check every segment header, every frame (checksum, seq continuity, batch
order) and the bytes after the data, as a full recovery scan would (read-only),
then read every record back through the read-only API.

Exit 0 when clean; 3 when damage was found (each problem printed with file,
offset, seq and reason); 4 when only a torn tail was found: unsynced records a
crashed writer left behind, which Open cuts, not corruption. A progress bar
(bytes and records, rate, ETA) is drawn when stdout is a terminal.`,
		Args: oneDir,
		RunE: func(_ *cobra.Command, args []string) error {
			return verify(e, args[0], e.isTerminal && !noProgress)
		},
	}
	c.Flags().BoolVar(&noProgress, "no-progress", false, "no progress bar even on a terminal")
	return c
}

type problem struct {
	file   string
	offset int64
	seq    uint64
	reason string
}

func (p problem) String() string {
	return fmt.Sprintf("file %s offset %d seq %d: %s", p.file, p.offset, p.seq, p.reason)
}

func verify(e *env, dir string, progress bool) error {
	out := e.stdout
	if err := checkDir(dir); err != nil {
		return err
	}
	if pid, ok := writerPID(dir); ok {
		fmt.Fprintf(out, "note: a writer (pid %d) has the log open; records it appends during the check are not covered\n", pid)
	}
	// Structure: a full recovery scan, read-only (every frame's checksum,
	// seq continuity, batch order, zeros after the end, headers, gaps).
	start := time.Now()
	if progress {
		fmt.Fprint(out, "checking structure (full scan of every segment)...")
	}
	rep, err := recovery.Recover(dir, &recovery.Options{ReadOnly: true, Full: true})
	if err != nil {
		var ce *format.CorruptError
		if errors.As(err, &ce) {
			fmt.Fprintf(out, "CORRUPT %s\n", problem{filepath.Base(ce.File), ce.Offset, ce.Seq, ce.Reason})
			return &exitError{code: exitCorrupt, msg: fmt.Sprintf("%s: damaged: 1 problem (walctl repair cuts the log at the first damage)", dir)}
		}
		return describe(err)
	}
	if progress {
		fmt.Fprint(out, "\r\033[K") // the bar takes the line
	}
	torn := rep.TornFile != "" || rep.RecordsDropped > 0 || rep.BytesZeroed > 0
	if torn {
		fmt.Fprintf(out, "TORN TAIL file %s offset %d seq %d: %d unsynced records, %d bytes after the last durable record; Open would cut them (a crashed writer, not corruption)\n",
			base(rep.TornFile), rep.TornOffset, rep.TornSeq, rep.RecordsDropped, rep.BytesZeroed)
	}

	// Records: read every one back through the read-only API, which checks
	// each checksum again and the index's offsets.
	var total int64
	for _, s := range rep.Segments {
		if s.End > format.SegmentHeaderSize {
			total += s.End - format.SegmentHeaderSize
		}
	}
	w, err := openRO(dir)
	if err != nil {
		return err
	}
	defer w.Close()
	first, last := w.FirstSeq(), w.LastSeq()
	var nrec uint64
	if last != 0 && last >= first {
		nrec = last - first + 1
	}
	var bar *progressbar.ProgressBar
	if progress {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(out),
			progressbar.OptionSetDescription(fmt.Sprintf("records 0/%d", nrec)),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	readStart := time.Now()
	var problems []problem
	var done, bytes uint64
	seq := first
	for nrec > 0 && seq <= last && len(problems) < maxProblems {
		r, err := w.NewReader(seq)
		if err != nil {
			return describe(err)
		}
		for r.Next() && r.Seq() <= last {
			n := int64(format.FrameHeaderSize + (len(r.Value())+7)&^7)
			done++
			bytes += uint64(n)
			seq = r.Seq() + 1
			if bar != nil {
				bar.Add64(n)
				if done%8192 == 0 {
					el := time.Since(readStart).Seconds()
					bar.Describe(fmt.Sprintf("records %d/%d (%.0f/s)", done, nrec, float64(done)/el))
				}
			}
			if seq > last {
				break
			}
		}
		err = r.Err()
		r.Close()
		if err == nil {
			break
		}
		var ce *format.CorruptError
		if !errors.As(err, &ce) {
			if bar != nil {
				bar.Clear()
			}
			return describe(err)
		}
		problems = append(problems, problem{filepath.Base(ce.File), ce.Offset, ce.Seq, ce.Reason})
		if ce.Seq >= seq {
			seq = ce.Seq + 1
		} else {
			seq++
		}
	}
	if bar != nil {
		bar.Finish()
	}
	for _, p := range problems {
		fmt.Fprintf(out, "CORRUPT %s\n", p)
	}
	el := time.Since(start)
	switch {
	case len(problems) > 0:
		return &exitError{code: exitCorrupt, msg: fmt.Sprintf("%s: damaged: %d problem(s)", dir, len(problems))}
	case torn:
		fmt.Fprintf(out, "records %d, segments %d: valid prefix intact; torn tail only\n", done, len(rep.Segments))
		return &exitError{code: exitTorn, msg: fmt.Sprintf("%s: torn tail (run walctl repair, or open it with a writer, to cut it)", dir)}
	}
	segs := "segments"
	if len(rep.Segments) == 1 {
		segs = "segment"
	}
	fmt.Fprintf(out, "OK: %d records, %d %s, %d bytes of frames verified", done, len(rep.Segments), segs, bytes)
	if progress {
		fmt.Fprintf(out, " in %s", el.Round(time.Millisecond))
	}
	fmt.Fprintln(out)
	return nil
}
