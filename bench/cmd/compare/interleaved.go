package main

import (
	"bytes"
	"strings"
)

// splitInterleaved rewrites each benchmark line whose units name a peer
// ("p50-ns@raft-wal") into one line per peer, named with "/peer=<peer>"
// before the -GOMAXPROCS suffix, as the per-peer sub-benchmarks are, so
// benchstat lays them out in its peer columns. Peers keep the order of
// their first unit (mmapwal first: benchstat's base column). Other lines
// are copied as they are.
func splitInterleaved(in []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(in), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || strings.Contains(f[0], "/peer=") || !strings.Contains(line, "@") {
			out.WriteString(line)
			continue
		}
		name, procs := f[0], ""
		if i := strings.LastIndexByte(name, '-'); i > 0 && strings.Trim(name[i+1:], "0123456789") == "" {
			name, procs = name[:i], name[i:]
		}
		var order []string
		byPeer := map[string][]string{}
		for i := 2; i+1 < len(f); i += 2 {
			unit, peer, ok := strings.Cut(f[i+1], "@")
			if !ok {
				continue // the benchmark's own ns/op and the like: no peer
			}
			if _, seen := byPeer[peer]; !seen {
				order = append(order, peer)
			}
			byPeer[peer] = append(byPeer[peer], f[i], unit)
		}
		for _, peer := range order {
			out.WriteString(name + "/peer=" + peer + procs + "\t" + f[1] + "\t" + strings.Join(byPeer[peer], " ") + "\n")
		}
	}
	return out.Bytes()
}
