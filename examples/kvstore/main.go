// Command kvstore is a key-value store whose state lives in a WAL: every
// change is a JSON-encoded CREATE, UPDATE or DELETE operation, and on
// restart the operations are replayed into a map.
//
//	go run ./examples/kvstore -dir /tmp/kv-wal
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"sort"

	"github.com/mmapwal/wal/examples/kvstore/kv"
)

func main() {
	dir := flag.String("dir", "", "WAL directory (default: a new temporary directory)")
	flag.Parse()
	if *dir == "" {
		d, err := os.MkdirTemp("", "mmapwal-kv-")
		if err != nil {
			log.Fatal(err)
		}
		defer os.RemoveAll(d)
		*dir = d
	}

	s, err := kv.Open(*dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("opened with %d keys\n", len(s.Snapshot()))
	for _, op := range []struct{ name, key, value string }{
		{"create", "alice", "1"}, {"create", "bob", "2"}, {"update", "alice", "10"},
		{"create", "carol", "3"}, {"delete", "bob", ""},
	} {
		var err error
		switch op.name {
		case "create":
			err = s.Create(op.key, op.value)
		case "update":
			err = s.Update(op.key, op.value)
		case "delete":
			err = s.Delete(op.key)
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %s %s\n", op.name, op.key, op.value)
	}
	if err := s.Create("alice", "again"); err != nil {
		fmt.Printf("create alice again: %v (rejected before logging)\n", err)
	}
	if err := s.Close(); err != nil {
		log.Fatal(err)
	}

	// Restart: the map is rebuilt from the log.
	s, err = kv.Open(*dir)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	snap := s.Snapshot()
	keys := make([]string, 0, len(snap))
	for k := range snap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Printf("after restart, replayed %d operations:\n", s.Replayed())
	for _, k := range keys {
		fmt.Printf("  %s = %s\n", k, snap[k])
	}
}
