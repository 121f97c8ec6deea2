#!/usr/bin/env bash
# make demo-cluster: three raftkv nodes on loopback; write, kill the leader
# (SIGKILL), show the survivors serve every acknowledged write, restart the
# node from its directory and show it caught up. Everything in a temporary
# directory, removed at the end; every wait is bounded.
set -euo pipefail
GO=${GO:-go}
BASE=${RAFTKV_PORT_BASE:-27100}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

echo "== building examples/raftkv"
(cd examples/raftkv && $GO build -o "$work/raftkv" .)

peers=""
for i in 1 2 3; do peers+="${peers:+,}n$i=127.0.0.1:$((BASE+i))=127.0.0.1:$((BASE+10+i))"; done
http() { echo "127.0.0.1:$((BASE+10+$1))"; }
start() { # start node $1 [extra flags]
	local i=$1; shift
	"$work/raftkv" -id "n$i" -dir "$work/n$i" -raft "127.0.0.1:$((BASE+i))" -http "$(http "$i")" -peers "$peers" "$@" 2>>"$work/n$i.log" &
	pids[$i]=$!
}
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
status() { curl -fsS --max-time 2 "http://$(http "$1")/status" 2>/dev/null || true; }
leader() { # prints the number of the node that is leader, waiting up to 30 s
	for _ in $(seq 300); do
		for i in "$@"; do
			if [ "$(status "$i" | field state)" = Leader ]; then echo "$i"; return; fi
		done
		sleep 0.1
	done
	echo "no leader" >&2; exit 1
}

echo "== starting n1 n2 n3 (raft on 127.0.0.1:$((BASE+1))-$((BASE+3)), HTTP on $((BASE+11))-$((BASE+13)))"
start 1 -bootstrap; start 2; start 3
L=$(leader 1 2 3)
echo "leader: n$L"

echo "== writing 200 keys through n1 (followers redirect writes to the leader)"
for k in $(seq 200); do curl -fsS -L --max-time 10 -X PUT --data "value-$k" "http://$(http 1)/kv/key$k" >/dev/null; done
curl -fsS -L --max-time 10 -X DELETE "http://$(http 1)/kv/key13" >/dev/null
echo "200 writes and 1 delete acknowledged"

echo "== kill -9 the leader n$L"
kill -9 "${pids[$L]}"; wait "${pids[$L]}" 2>/dev/null || true
survivors=(); for i in 1 2 3; do [ "$i" != "$L" ] && survivors+=("$i"); done
N=$(leader "${survivors[@]}")
echo "new leader: n$N"
for i in "${survivors[@]}"; do
	# Followers apply what the leader committed shortly after: wait (bounded).
	for _ in $(seq 100); do [ "$(status "$i" | field keys)" = 199 ] && break; sleep 0.1; done
	missing=0
	for k in $(seq 200); do
		got=$(curl -sS --max-time 2 "http://$(http "$i")/kv/key$k" || true)
		want="value-$k"; [ "$k" = 13 ] && want="404 page not found"
		[ "$got" = "$want" ] || missing=$((missing+1))
	done
	echo "n$i serves $((200-missing))/200 acknowledged writes correctly"
	[ "$missing" = 0 ] || exit 1
done

echo "== 50 more writes while n$L is down"
for k in $(seq 201 250); do curl -fsS -L --max-time 10 -X PUT --data "value-$k" "http://$(http "${survivors[0]}")/kv/key$k" >/dev/null; done

echo "== restarting n$L from its directory"
start "$L"
want=$(status "$N" | field applied_index)
for _ in $(seq 300); do
	got=$(status "$L" | field applied_index)
	[ -n "$got" ] && [ "$got" -ge "$want" ] && break
	sleep 0.1
done
echo "n$L status: $(status "$L")"
bad=0
for k in $(seq 250); do
	got=$(curl -sS --max-time 2 "http://$(http "$L")/kv/key$k" || true)
	want="value-$k"; [ "$k" = 13 ] && want="404 page not found"
	[ "$got" = "$want" ] || bad=$((bad+1))
done
echo "restarted n$L serves $((250-bad))/250 keys correctly: caught up"
[ "$bad" = 0 ]
