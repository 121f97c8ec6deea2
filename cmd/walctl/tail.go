package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/mmapwal/wal/mmapwal"
	"github.com/spf13/cobra"
)

func tailCmd(e *env) *cobra.Command {
	var n uint64
	var follow bool
	var format string
	c := &cobra.Command{
		Use:   "tail DIR",
		Short: "Print the last N records; -f follows a writer in another process until interrupted",
		Args:  oneDir,
		RunE: func(cmd *cobra.Command, args []string) error {
			rw, err := newRecordWriter(e.stdout, format)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return tail(ctx, rw, args[0], n, follow)
		},
	}
	c.Flags().Uint64VarP(&n, "lines", "n", 10, "how many records")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new records until SIGINT")
	c.Flags().StringVar(&format, "format", "text", "text, json, hex or raw (as dump)")
	return c
}

func tail(ctx context.Context, rw *recordWriter, dir string, n uint64, follow bool) error {
	w, err := openRO(dir)
	if err != nil {
		return err
	}
	defer w.Close()
	first, last := w.FirstSeq(), w.LastSeq()
	from := last + 1
	if last != 0 && n > 0 {
		from = first
		if last-first+1 > n {
			from = last - n + 1
		}
	}
	if last == 0 && first > 0 {
		from = first
	}
	r, err := w.NewReader(from)
	if err != nil {
		return describe(err)
	}
	defer r.Close()
	for {
		for r.Next() {
			if err := rw.write(r.Seq(), r.Value()); err != nil {
				return err
			}
		}
		if err := r.Err(); err != nil {
			rw.flush()
			return describe(err)
		}
		if err := rw.flush(); err != nil {
			return err
		}
		if !follow {
			return nil
		}
		if err := r.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: the normal end of tail -f
			}
			if errors.Is(err, mmapwal.ErrTruncated) {
				return errors.New("the writer truncated the log behind the records shown (TruncateBack); run tail again")
			}
			return describe(err)
		}
	}
}
