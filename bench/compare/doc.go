// Package compare holds the comparison benchmarks of mmapwal against other
// Go WALs (tidwall/wal, hashicorp/raft-wal, rosedblabs/wal) and the raw
// limits of the machine, all in its _test.go files:
//
//	go test -run '^$' -bench . -count 3 ./compare/ [-compare.n 1000000]
//
// Every workload is a Benchmark<Workload> with one sub-benchmark per peer
// configuration (peer=mmapwal, peer=tidwall, peer=tidwall-cached, ...) and
// per raw limit (peer=raw, peer=raw-msync, peer=raw-pwrite), reporting its
// figures with b.ReportMetric, so that `go tool benchstat -col /peer` puts
// the peers side by side. cmd/compare runs them and checks issue 12's
// targets. Plain `go test ./compare/` runs each workload once at a tiny
// size for every peer (TestSmoke).
package compare
