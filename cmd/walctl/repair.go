package main

import (
	"bufio"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mmapwal/wal/format"
	"github.com/mmapwal/wal/recovery"
	"github.com/spf13/cobra"
)

func repairCmd(e *env) *cobra.Command {
	var yes bool
	c := &cobra.Command{
		Use:   "repair DIR",
		Short: "Cut a damaged log at its first damage, keeping copies (asks first unless --yes)",
		Long: `Show what is wrong and what repair will do, ask, then run recovery.Repair:
the damaged segment is copied aside to <name>.broken and cut at its last valid
record; later segments are renamed aside to <name>.broken; records from the
damaged point on are dropped. Refuses while a writer holds the log.`,
		Args: oneDir,
		RunE: func(_ *cobra.Command, args []string) error {
			return repair(e, args[0], yes)
		},
	}
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask")
	return c
}

func repair(e *env, dir string, yes bool) error {
	out := e.stdout
	if err := checkDir(dir); err != nil {
		return err
	}
	if pid, ok := writerPID(dir); ok {
		return fmt.Errorf("%s: log is locked by a running writer (pid %d); stop it first", dir, pid)
	}
	// The plan, read-only: the same full scan Repair starts with.
	rep, err := recovery.Recover(dir, &recovery.Options{ReadOnly: true, Full: true})
	var ce *format.CorruptError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(out, "damage: %s\n", corruptLine(ce))
		fmt.Fprintf(out, "repair will copy %s aside to %s%s, cut the log before seq %d (where the damage is),\n",
			filepath.Base(ce.File), filepath.Base(ce.File), recovery.BrokenExt, ce.Seq)
		fmt.Fprintf(out, "rename every later segment aside to <name>%s and drop the records from seq %d on.\n", recovery.BrokenExt, ce.Seq)
	case err != nil:
		return describe(err)
	case rep.TornFile != "" || rep.RecordsDropped > 0 || rep.BytesZeroed > 0:
		fmt.Fprintf(out, "torn tail: %s offset %d seq %d: %d unsynced records, %d bytes (a crashed writer)\n",
			base(rep.TornFile), rep.TornOffset, rep.TornSeq, rep.RecordsDropped, rep.BytesZeroed)
		fmt.Fprintf(out, "repair will cut it as Open would, keeping a copy of %s as %s%s.\n",
			base(rep.TornFile), base(rep.TornFile), recovery.BrokenExt)
	default:
		fmt.Fprintln(out, "no damage found; nothing to repair")
		return nil
	}
	if !yes {
		fmt.Fprint(out, "Proceed? [y/N] ")
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		if !e.stdinTerminal {
			fmt.Fprintln(out) // a terminal echoed the answer and its newline
		}
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return fmt.Errorf("repair aborted: nothing changed (use --yes to run without asking)")
		}
	}
	r, err := recovery.Repair(dir, nil)
	if err != nil {
		return describe(err)
	}
	printRepair(e, r)
	return nil
}

func printRepair(e *env, r *recovery.RepairReport) {
	out := e.stdout
	if !r.Damaged {
		fmt.Fprintln(out, "repair: no damage found; nothing changed")
		return
	}
	fmt.Fprintf(out, "repaired: %s\n", r.Reason)
	fmt.Fprintf(out, "  cut at:          %s offset %d; the log now ends at seq %d\n", base(r.File), r.Offset, r.Seq-1)
	fmt.Fprintf(out, "  records dropped: %d\n", r.RecordsDropped)
	fmt.Fprintf(out, "  bytes zeroed:    %d\n", r.BytesZeroed)
	keys := make([]string, 0, len(r.MovedAside))
	for k := range r.MovedAside {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "  kept aside:      %s -> %s\n", filepath.Base(k), filepath.Base(r.MovedAside[k]))
	}
	for _, p := range r.IndexesRemoved {
		fmt.Fprintf(out, "  index removed:   %s (rebuilt at the next Open)\n", filepath.Base(p))
	}
}
