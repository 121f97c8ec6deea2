package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/mmapwal/wal/recovery"
	"github.com/spf13/cobra"
)

type statSegment struct {
	File     string `json:"file"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"` // FirstSeq-1 when it holds no record
	Records  uint64 `json:"records"`
	Size     int64  `json:"size"` // file size (preallocated)
	Used     int64  `json:"used"` // offset after the last complete record
	Closed   bool   `json:"closed_cleanly,omitempty"`
}

type statPlan struct {
	TornFile       string   `json:"torn_file,omitempty"`
	TornOffset     int64    `json:"torn_offset,omitempty"`
	TornSeq        uint64   `json:"torn_seq,omitempty"`
	BytesZeroed    int64    `json:"bytes_zeroed"`
	RecordsDropped int      `json:"records_dropped"`
	FilesRemoved   []string `json:"files_removed,omitempty"`
	TempRemoved    []string `json:"temp_files_removed,omitempty"`
	IndexesInvalid int      `json:"indexes_rebuilt"`
}

type statOut struct {
	Dir         string        `json:"dir"`
	State       string        `json:"state"` // empty, clean, crashed, open
	WriterPID   int           `json:"writer_pid,omitempty"`
	FirstSeq    uint64        `json:"first_seq"`
	LastSeq     uint64        `json:"last_seq"`
	Records     uint64        `json:"records"`
	NextSeq     uint64        `json:"next_seq"`
	Segments    []statSegment `json:"segments"`
	BytesOnDisk int64         `json:"bytes_on_disk"`
	Recovery    statPlan      `json:"recovery"` // what Open would do now
}

func statCmd(e *env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "stat DIR",
		Short: "Segments, seq range, size on disk, and what recovery would do (read-only)",
		Args:  oneDir,
		RunE: func(_ *cobra.Command, args []string) error {
			st, err := statDir(args[0])
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStat(e, st)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func statDir(dir string) (*statOut, error) {
	w, err := openRO(dir)
	if err != nil {
		return nil, err
	}
	first, last := w.FirstSeq(), w.LastSeq()
	w.Close()
	rep, err := recovery.Recover(dir, &recovery.Options{ReadOnly: true})
	if err != nil {
		return nil, describe(err)
	}
	st := &statOut{Dir: dir, FirstSeq: first, LastSeq: last, NextSeq: rep.NextSeq, Segments: []statSegment{}}
	if last >= first && last != 0 {
		st.Records = last - first + 1
	}
	if st.BytesOnDisk, err = diskUsage(dir); err != nil {
		return nil, err
	}
	closed := false
	for _, s := range rep.Segments {
		st.Segments = append(st.Segments, statSegment{
			File: filepath.Base(s.Path), FirstSeq: s.FirstSeq, LastSeq: s.FirstSeq + s.Count - 1,
			Records: s.Count, Size: s.Size, Used: s.End, Closed: s.Closed,
		})
		closed = s.Closed
	}
	st.Recovery = statPlan{
		TornFile: base(rep.TornFile), TornOffset: rep.TornOffset, TornSeq: rep.TornSeq,
		BytesZeroed: rep.BytesZeroed, RecordsDropped: rep.RecordsDropped,
		FilesRemoved: bases(rep.FilesRemoved), TempRemoved: bases(rep.TempRemoved),
		IndexesInvalid: rep.IndexesInvalid,
	}
	switch pid, locked := writerPID(dir); {
	case locked:
		st.State, st.WriterPID = "open", pid
	case len(rep.Segments) == 0:
		st.State = "empty"
	case closed:
		st.State = "clean"
	default:
		st.State = "crashed"
	}
	return st, nil
}

func base(p string) string {
	if p == "" {
		return ""
	}
	return filepath.Base(p)
}

func bases(ps []string) []string {
	var out []string
	for _, p := range ps {
		out = append(out, filepath.Base(p))
	}
	return out
}

func (p statPlan) nothing() bool {
	return p.TornFile == "" && p.BytesZeroed == 0 && p.RecordsDropped == 0 && len(p.FilesRemoved) == 0 && len(p.TempRemoved) == 0 && p.IndexesInvalid == 0
}

func printStat(e *env, st *statOut) {
	out := e.stdout
	state := map[string]string{
		"empty":   "empty (no segment yet)",
		"clean":   "clean (closed cleanly)",
		"crashed": "crashed (not closed cleanly; Open recovers it)",
	}[st.State]
	if st.State == "open" {
		state = fmt.Sprintf("open by a writer (pid %d); the tail may move while you look", st.WriterPID)
	}
	fmt.Fprintf(out, "directory:     %s\n", st.Dir)
	fmt.Fprintf(out, "state:         %s\n", state)
	if st.Records == 0 && st.NextSeq == 0 {
		fmt.Fprintln(out, "records:       none")
	} else if st.Records == 0 {
		fmt.Fprintf(out, "records:       none (next seq %d)\n", st.NextSeq)
	} else {
		fmt.Fprintf(out, "records:       %d (seq %d..%d)\n", st.Records, st.FirstSeq, st.LastSeq)
	}
	fmt.Fprintf(out, "segments:      %d\n", len(st.Segments))
	fmt.Fprintf(out, "bytes on disk: %d (%s)\n", st.BytesOnDisk, humanBytes(st.BytesOnDisk))
	if len(st.Segments) > 0 {
		fmt.Fprintln(out)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEGMENT\tFIRST\tLAST\tRECORDS\tSIZE\tUSED")
		for _, s := range st.Segments {
			last := fmt.Sprint(s.LastSeq)
			if s.Records == 0 {
				last = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%d\n", s.File, s.FirstSeq, last, s.Records, humanBytes(s.Size), s.Used)
		}
		tw.Flush()
		fmt.Fprintln(out)
	}
	p := st.Recovery
	if st.State == "open" {
		// The writer recovered at its Open; its prepared and in-flight
		// files would only look like leftovers.
		fmt.Fprintln(out, "recovery:      not applicable while a writer holds the log")
		return
	}
	if p.nothing() {
		fmt.Fprintln(out, "recovery:      nothing to do")
		return
	}
	fmt.Fprintln(out, "recovery would (read-only plan; nothing was changed):")
	if p.TornFile != "" {
		fmt.Fprintf(out, "  cut a torn tail in %s at offset %d (seq %d on): zero %d bytes, drop %d unsynced records\n",
			p.TornFile, p.TornOffset, p.TornSeq, p.BytesZeroed, p.RecordsDropped)
	}
	for _, f := range p.FilesRemoved {
		fmt.Fprintf(out, "  remove %s\n", f)
	}
	for _, f := range p.TempRemoved {
		fmt.Fprintf(out, "  remove leftover %s\n", f)
	}
	if p.IndexesInvalid > 0 {
		fmt.Fprintf(out, "  rebuild %d index file(s) from their segments\n", p.IndexesInvalid)
	}
}
