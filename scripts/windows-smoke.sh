#!/usr/bin/env bash
# windows-smoke.sh: run mmapwal's test suites as Windows binaries under Wine.
#
# A smoke test of the Windows build (platform/platform_windows.go and the
# core on top of it), not an oracle of Windows semantics: Wine differs from
# Windows in places (a closed-but-mapped file can be renamed, for one). See
# the "Windows" section of FAULTS.md.
#
# Usage: scripts/windows-smoke.sh [./pkg ...]
#   default packages: ./format ./index ./recovery ./platform ./mmapwal
#
# Environment:
#   WINE_SMOKE_NO_INSTALL=1  never run apt-get (fail if wine64/mingw are missing)
#   WINE_SMOKE_PREFIX=DIR    Wine prefix (default ${TMPDIR:-/tmp}/mmapwal-wineprefix;
#                            created on first use, reused after)
#   WINE_SMOKE_LOGS=DIR      where per-package logs go (default ${TMPDIR:-/tmp}/mmapwal-winsmoke-logs)
#   WINE_SMOKE_TIMEOUT=DUR   -test.timeout per package (default 15m)
#   WINE_SMOKE_ARGS="..."    extra test-binary flags, e.g. "-test.short -test.count=2"
#
# What it does: installs wine64 and gcc-mingw-w64-x86-64-win32 with apt-get if
# they are missing; builds a shim bcryptprimitives.dll (Go 1.26 binaries
# import bcryptprimitives!ProcessPrng, which Wine 8 lacks) and installs it in
# the prefix's system32; cross-compiles `go test -c` for each package; runs
# each binary under wine through `go tool test2json` from the package's own
# directory (as `go test` would, so testdata/ is found); prints one summary
# line per package. Exits 1 if any package fails.
#
# Excluded tests (-test.skip): none. TestCrash accepts the Windows exit
# code of a killed child (Process.Kill is TerminateProcess(h, 1)), and the
# read-only-directory probe skips itself on Windows, which ignores the
# read-only attribute on directories.
#   Linux-only tests (power loss, filesystem faults, EIO) are already behind
#   //go:build linux and are not compiled at all.
#
# Wine and os.RemoveAll (t.TempDir cleanup): Go's os.RemoveAll on Windows
# deletes with NtSetInformationFile(FileDispositionInformationEx, POSIX
# semantics) and falls back to the classic FileDispositionInfo only when told
# the class or flags are unsupported (STATUS_INVALID_INFO_CLASS,
# _INVALID_PARAMETER, _NOT_SUPPORTED). Wine 8 answers STATUS_NOT_IMPLEMENTED,
# so RemoveAll fails ("unlinkat ...: Invalid function.") and every test using
# t.TempDir would fail in its cleanup. Rather than tolerate some failures, the
# test binaries are built with `-overlay` replacing Go's
# internal/syscall/windows/at_windows.go by a copy whose fallback list also
# has STATUS_NOT_IMPLEMENTED (one sed; the script stops if it does not apply).
# This touches only the os.RemoveAll/os.Root delete path, which mmapwal's
# code does not use (it deletes with os.Remove, i.e. DeleteFile). No test
# failure is tolerated: the summary counts are go test's own.

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [ $# -gt 0 ]; then
	pkgs=("$@")
else
	pkgs=(./format ./index ./recovery ./platform ./mmapwal)
fi

# Per-package -test.skip patterns (see the header for the reasons).
skip_for() {
	case "$1" in
	*) echo '' ;;
	esac
}

tmp=${TMPDIR:-/tmp}
prefix=${WINE_SMOKE_PREFIX:-$tmp/mmapwal-wineprefix}
logs=${WINE_SMOKE_LOGS:-$tmp/mmapwal-winsmoke-logs}
timeout=${WINE_SMOKE_TIMEOUT:-15m}
extra=${WINE_SMOKE_ARGS:-}

# --- 1. tools -----------------------------------------------------------------
# Debian's wine64 package puts wine64 and wineserver in /usr/lib/wine and
# nothing on PATH (the wine wrapper is in the "wine" package).
export PATH="/usr/lib/wine:$PATH"
need=()
command -v wine64 >/dev/null || need+=(wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64-win32)
if [ ${#need[@]} -gt 0 ]; then
	if [ -n "${WINE_SMOKE_NO_INSTALL:-}" ]; then
		echo "windows-smoke: missing ${need[*]} and WINE_SMOKE_NO_INSTALL is set" >&2
		exit 2
	fi
	sudo=
	[ "$(id -u)" = 0 ] || sudo=sudo
	echo "windows-smoke: installing ${need[*]} (apt-get)"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v wine64 >/dev/null && command -v wineserver >/dev/null || {
	echo "windows-smoke: wine64/wineserver not found after install" >&2
	exit 2
}

work=$(mktemp -d "$tmp/mmapwal-winsmoke.XXXXXX")
cleanup() {
	WINEPREFIX="$prefix" wineserver -k 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$logs"
rm -f "$logs"/*.log "$logs"/*.json

# --- 2. the ProcessPrng shim --------------------------------------------------
cat >"$work/bcryptprimitives.c" <<'EOF'
/* Stand-in for bcryptprimitives.dll: Go's runtime calls ProcessPrng for
   random bytes; Wine 8 does not have it. RtlGenRandom is SystemFunction036
   in advapi32. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buf, ULONG len);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
	while (len > 0) {
		ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		len -= n;
	}
	return TRUE;
}
EOF
x86_64-w64-mingw32-gcc -shared -O2 -s -o "$work/bcryptprimitives.dll" "$work/bcryptprimitives.c" -ladvapi32

# --- 3. the Wine prefix -------------------------------------------------------
export WINEPREFIX="$prefix"
export WINEDEBUG=-all
export WINEARCH=win64
# No Mono/Gecko prompts; our bcryptprimitives.dll ("n"ative) over Wine's own.
export WINEDLLOVERRIDES="mscoree,mshtml=;bcryptprimitives=n"
unset DISPLAY
if [ ! -d "$prefix/drive_c/windows/system32" ]; then
	echo "windows-smoke: creating Wine prefix $prefix"
	wine64 wineboot -i >"$work/wineboot.log" 2>&1 || {
		cat "$work/wineboot.log" >&2
		exit 2
	}
	wineserver -w
fi
cp "$work/bcryptprimitives.dll" "$prefix/drive_c/windows/system32/bcryptprimitives.dll"

# Wine takes %TEMP% from the prefix's registry (C:\users\<user>\Temp), not
# from the Unix environment: the t.TempDir leftovers land there.
clear_wine_temp() {
	local d
	for d in "$prefix"/drive_c/users/*/Temp; do
		[ -d "$d" ] && find "$d" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
	done
	return 0
}

# --- 4. the RemoveAll overlay (see the header) ------------------------------
atsrc="$(go env GOROOT)/src/internal/syscall/windows/at_windows.go"
overlay=()
if [ -f "$atsrc" ] && grep -q FileDispositionInformationEx "$atsrc" &&
	! grep -q -e 'NTStatus(0xC0000002)' -e 'STATUS_NOT_IMPLEMENTED' "$atsrc"; then
	sed 's|^\([[:space:]]*\)STATUS_NOT_SUPPORTED:|\1STATUS_NOT_SUPPORTED, NTStatus(0xC0000002) /* STATUS_NOT_IMPLEMENTED: Wine */:|' \
		"$atsrc" >"$work/at_windows.go"
	if cmp -s "$atsrc" "$work/at_windows.go"; then
		echo "windows-smoke: $atsrc changed shape ($(go env GOVERSION)); update the RemoveAll overlay in this script" >&2
		exit 2
	fi
	printf '{"Replace":{"%s":"%s"}}\n' "$atsrc" "$work/at_windows.go" >"$work/overlay.json"
	overlay=(-overlay "$work/overlay.json")
fi

# --- 5. the result filter (reads go tool test2json events) --------------------
mkdir -p "$work/filter"
cat >"$work/filter/main.go" <<'EOF'
// Reads test2json events on stdin; writes the plain test output to the log
// file given as argument 2; prints one summary line (and the output of each
// failed test) on stdout; exits 1 unless the package passed: a package
// result of pass, no failed test, at least one test, and no output outside
// a test other than go test's own PASS/FAIL lines.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action, Test, Output string
}

func framework(l string) bool {
	t := strings.TrimSpace(l)
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- FAIL", "--- SKIP"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return t == ""
}

func pkgLine(l string) bool {
	t := strings.TrimSpace(l)
	return t == "" || t == "PASS" || t == "FAIL" || strings.HasPrefix(t, "exit status ") ||
		strings.HasPrefix(t, "ok ") || strings.HasPrefix(t, "FAIL\t") || strings.HasPrefix(t, "FAIL ") ||
		t == "testing: warning: no tests to run"
}

func main() {
	pkg, logPath := os.Args[1], os.Args[2]
	logf, err := os.Create(logPath)
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	defer logf.Close()
	out := map[string][]string{}
	var passed, failed, skipped int
	failedSet := map[string]bool{}
	var stray []string
	pkgAction := ""
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			stray = append(stray, sc.Text())
			fmt.Fprintln(logf, sc.Text())
			continue
		}
		switch e.Action {
		case "output":
			fmt.Fprint(logf, e.Output)
			if e.Test == "" {
				if !pkgLine(e.Output) {
					stray = append(stray, strings.TrimRight(e.Output, "\n"))
				}
				continue
			}
			out[e.Test] = append(out[e.Test], strings.TrimRight(e.Output, "\n"))
		case "pass", "skip", "fail":
			if e.Test == "" {
				pkgAction = e.Action
				continue
			}
			switch e.Action {
			case "pass":
				passed++
			case "skip":
				skipped++
			case "fail":
				failed++
				failedSet[e.Test] = true
			}
		}
	}
	var fails []string
	for t := range failedSet {
		fails = append(fails, t)
	}
	sort.Strings(fails)
	ok := failed == 0 && len(stray) == 0 && passed+skipped > 0 && pkgAction == "pass"
	verdict := "PASS"
	if !ok {
		verdict = "FAIL"
	}
	for _, t := range fails {
		fmt.Printf("--- FAIL %s %s\n", pkg, t)
		for _, l := range out[t] {
			if !framework(l) {
				fmt.Println("   ", l)
			}
		}
	}
	if len(stray) > 0 {
		fmt.Printf("--- output of %s outside any test:\n", pkg)
		for _, l := range stray {
			fmt.Println("   ", l)
		}
	}
	if pkgAction == "" {
		fmt.Printf("--- %s: no package result (binary did not start, crashed or was killed)\n", pkg)
	}
	fmt.Printf("windows-smoke %-10s %s: %d passed, %d failed, %d skipped (tests and subtests, per run)\n", pkg, verdict, passed, failed, skipped)
	if !ok {
		os.Exit(1)
	}
}
EOF
(cd "$work/filter" && GOOS= GOARCH= CGO_ENABLED=0 go build -o "$work/smokefilter" main.go)

# --- 6. build and run ---------------------------------------------------------
rc=0
summary=()
for p in "${pkgs[@]}"; do
	name=$(basename "$p")
	exe="$work/$name.test.exe"
	if ! GOOS=windows GOARCH=amd64 CGO_ENABLED=0 go test "${overlay[@]}" -c -o "$exe" "$p" >"$logs/$name.build.log" 2>&1; then
		cat "$logs/$name.build.log"
		summary+=("windows-smoke $name FAIL: cross-compile failed")
		rc=1
		continue
	fi
	if [ ! -f "$exe" ]; then
		summary+=("windows-smoke $name: no test files")
		continue
	fi
	skip=$(skip_for "$p")
	args=(-test.v=test2json -test.timeout "$timeout")
	[ -n "$skip" ] && args+=(-test.skip "$skip")
	# shellcheck disable=SC2206
	[ -n "$extra" ] && args+=($extra)
	echo "== $p: wine64 $name.test.exe ${args[*]}"
	clear_wine_temp
	set +e
	(cd "$p" && go tool test2json -t -p "$name" wine64 "$exe" "${args[@]}") >"$logs/$name.json" 2>&1
	set -e
	line=$("$work/smokefilter" "$name" "$logs/$name.log" <"$logs/$name.json") || rc=1
	echo "$line" | grep -v '^windows-smoke ' || true
	summary+=("$(echo "$line" | grep '^windows-smoke ')")
	clear_wine_temp
	wineserver -k 2>/dev/null || true
done

echo
printf '%s\n' "${summary[@]}"
echo "windows-smoke: logs in $logs"
exit $rc
