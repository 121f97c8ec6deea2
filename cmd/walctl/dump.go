package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/mmapwal/wal/mmapwal"
	"github.com/spf13/cobra"
)

// recordWriter prints records in one of the dump formats.
type recordWriter struct {
	w      *bufio.Writer
	format string
	buf    []byte
}

func newRecordWriter(w io.Writer, format string) (*recordWriter, error) {
	switch format {
	case "text", "json", "hex", "raw":
	default:
		return nil, &usageError{fmt.Errorf("--format %q: want text, json, hex or raw", format)}
	}
	return &recordWriter{w: bufio.NewWriterSize(w, 64<<10), format: format}, nil
}

func (rw *recordWriter) write(seq uint64, data []byte) error {
	var err error
	switch rw.format {
	case "text":
		// seq, length, then the payload with everything not printable
		// escaped Go-style (\n, \x00, \u00a0...), so one record is one line.
		rw.buf = strconv.AppendUint(rw.buf[:0], seq, 10)
		rw.buf = append(rw.buf, '\t')
		rw.buf = strconv.AppendInt(rw.buf, int64(len(data)), 10)
		rw.buf = append(rw.buf, '\t')
		rw.buf = appendEscaped(rw.buf, data)
		rw.buf = append(rw.buf, '\n')
		_, err = rw.w.Write(rw.buf)
	case "json":
		var b []byte
		b, err = json.Marshal(struct {
			Seq  uint64 `json:"seq"`
			Len  int    `json:"len"`
			Data string `json:"data"`
		}{seq, len(data), base64.StdEncoding.EncodeToString(data)})
		if err == nil {
			b = append(b, '\n')
			_, err = rw.w.Write(b)
		}
	case "hex":
		_, err = fmt.Fprintf(rw.w, "seq %d len %d\n%s", seq, len(data), hex.Dump(data))
	case "raw":
		// 4-byte little-endian length, then the payload (records are at
		// most 1 GiB by the format, so the length always fits).
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(data)))
		if _, err = rw.w.Write(n[:]); err == nil {
			_, err = rw.w.Write(data)
		}
	}
	return err
}

func (rw *recordWriter) flush() error { return rw.w.Flush() }

func appendEscaped(dst, data []byte) []byte {
	for len(data) > 0 {
		r, n := utf8.DecodeRune(data)
		switch {
		case r == utf8.RuneError && n <= 1:
			dst = append(dst, `\x`...)
			dst = append(dst, "0123456789abcdef"[data[0]>>4], "0123456789abcdef"[data[0]&15])
		case r == '\\':
			dst = append(dst, `\\`...)
		case strconv.IsPrint(r):
			dst = append(dst, data[:n]...)
		default:
			q := strconv.QuoteRune(r) // 'x' with Go escapes
			dst = append(dst, q[1:len(q)-1]...)
		}
		data = data[n:]
	}
	return dst
}

func dumpCmd(e *env) *cobra.Command {
	var from, to uint64
	var format string
	c := &cobra.Command{
		Use:   "dump DIR",
		Short: "Print records in seq order (--from/--to inclusive; text, json, hex or raw)",
		Long: `Print records in seq order, from --from to --to (both inclusive; default:
the whole log as it is when dump starts).

Formats:
  text  one line per record: SEQ<TAB>LEN<TAB>payload, non-printable bytes escaped (\n, \x00, \\)
  json  one object per line: {"seq":N,"len":N,"data":"<base64>"}
  hex   "seq N len N" then a hex dump of the payload
  raw   for piping: each payload preceded by its length, 4 bytes little-endian`,
		Args: oneDir,
		RunE: func(_ *cobra.Command, args []string) error {
			rw, err := newRecordWriter(e.stdout, format)
			if err != nil {
				return err
			}
			w, err := openRO(args[0])
			if err != nil {
				return err
			}
			defer w.Close()
			first, last := w.FirstSeq(), w.LastSeq()
			if from < first {
				from = first
			}
			if to == 0 || to > last {
				to = last
			}
			if last == 0 || from > to {
				return rw.flush()
			}
			if err := dumpRange(w, rw, from, to); err != nil {
				rw.flush()
				return err
			}
			return rw.flush()
		},
	}
	c.Flags().Uint64Var(&from, "from", 0, "first seq (inclusive; default the log's first)")
	c.Flags().Uint64Var(&to, "to", 0, "last seq (inclusive; default the log's last at start)")
	c.Flags().StringVar(&format, "format", "text", "text, json, hex or raw")
	return c
}

func dumpRange(w *mmapwal.WAL, rw *recordWriter, from, to uint64) error {
	r, err := w.NewReader(from)
	if err != nil {
		return describe(err)
	}
	defer r.Close()
	for r.Next() {
		if r.Seq() > to {
			return nil
		}
		if err := rw.write(r.Seq(), r.Value()); err != nil {
			return err
		}
		if r.Seq() == to {
			return nil
		}
	}
	if err := r.Err(); err != nil {
		return describe(err)
	}
	return nil
}
