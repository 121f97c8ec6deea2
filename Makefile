# mmapwal — see README.md. Every target works from a fresh clone.
GO      ?= go
MODULES := . $(shell find . -mindepth 2 -name go.mod -not -path './testdata/*' -exec dirname {} \;)
FUZZTIME ?= 60s
BENCHTIME ?= 1s

.PHONY: test demo lint bench bench-compare bench-compare-quick crash fuzz windows-smoke scale

## test: race tests of every module (short crash loop and power-loss trials included)
test:
	@for m in $(MODULES); do echo "== go test -race $$m"; (cd $$m && $(GO) test -race -count=1 ./...) || exit 1; done

## demo: run the examples in a temporary directory and print what happened
demo:
	@d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	echo "== examples/raw: write raw records, then replay them"; $(GO) run ./examples/raw -dir "$$d/raw" && \
	echo && echo "== examples/kvstore: JSON operations replayed into a map on restart"; $(GO) run ./examples/kvstore -dir "$$d/kv"
	@# walctl (its own module, cmd/walctl) on the log examples/raw leaves behind
	@d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; $(GO) run ./examples/raw -dir "$$d/raw" >/dev/null && (cd cmd/walctl && $(GO) build -o "$$d/walctl" .) && \
	echo && echo "== walctl stat: the log examples/raw wrote"; "$$d/walctl" stat "$$d/raw" && \
	echo && echo "== walctl verify: every record's checksum and every structural rule"; "$$d/walctl" verify "$$d/raw"

## lint: gofmt, go vet (core also for Windows and darwin), staticcheck -checks all for Linux and Windows if installed
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...) || exit 1; done
	@# the core module must build and vet on Windows and other Unix too; bench/ is Linux-only
	GOOS=windows $(GO) vet ./... && GOOS=windows $(GO) build ./... && GOOS=darwin $(GO) vet ./... && GOOS=freebsd $(GO) build ./...
	@if command -v staticcheck >/dev/null; then staticcheck -checks all ./...; fi
	@# build-tagged code for Windows (e.g. code unused there) is only checked this way
	@if command -v staticcheck >/dev/null; then GOOS=windows staticcheck -checks all ./...; fi

## bench: in-package benchmarks of the hot paths
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./mmapwal/

## bench-compare: mmapwal against tidwall/wal, hashicorp/raft-wal and rosedblabs/wal (default and fastest configurations) and the raw limits; benchstat tables and issue 12's targets
bench-compare:
	cd bench && $(GO) run ./cmd/compare -count 3

## bench-compare-quick: the same at 10,000 records, one run, short benchmark times (a look, not a measurement)
bench-compare-quick:
	cd bench && $(GO) run ./cmd/compare -short -count 1

## crash: the long crash loop and power-loss runs
crash:
	MMAPWAL_CRASH_CYCLES=1000 MMAPWAL_POWERLOSS_TRIALS=10000 $(GO) test -count=1 -timeout 60m -run 'TestCrash|TestPowerLoss' -v ./mmapwal/ | grep -E '^(=== RUN|--- |    .*(cycles|trials|TOTAL))|^(ok|FAIL)'
	@# raftstore: 50 SIGKILLed leaders of a 3-process cluster, 50 store crash cycles per conformance run, 20,000 applies in-process
	cd raftstore && RAFTSTORE_CRASH_CYCLES=50 RAFTSTORETEST_CRASH_CYCLES=50 RAFTSTORE_CLUSTER_APPLIES=20000 $(GO) test -count=1 -timeout 30m -run 'TestProcessCrash|TestCluster|TestConformance' -v . | grep -E '^(--- |    .*(cycles|kills|applies))|^(ok|FAIL)'

## scale: a log of 100,000 segments under `ulimit -n 1024`: descriptors, mappings and RSS stay bounded
scale:
	MMAPWAL_SCALE=1 $(GO) test -count=1 -timeout 60m -run '^TestScale100kSegments$$' -v ./mmapwal/

## fuzz: each fuzz target for FUZZTIME (minimisation capped: an execution of
## FuzzRecover opens a WAL, and minimising a large input would otherwise run for minutes unreported)
fuzz:
	@for t in $$($(GO) test -list '^Fuzz' ./format/ | grep ^Fuzz); do $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./format/ || exit 1; done
	@for t in $$($(GO) test -list '^Fuzz' ./recovery/ | grep ^Fuzz); do $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./recovery/ || exit 1; done
	@for t in $$($(GO) test -list '^Fuzz' ./index/ | grep ^Fuzz); do $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./index/ || exit 1; done

## windows-smoke: the test suites as Windows binaries under Wine (installs wine64 and mingw if missing)
windows-smoke:
	bash scripts/windows-smoke.sh

.PHONY: demo-cluster
## demo-cluster: three examples/raftkv nodes on loopback: write, kill -9 the leader, read from the survivors, restart it, show it caught up
demo-cluster:
	@bash scripts/demo-cluster.sh
