#!/usr/bin/env bash
# tools/timed.sh NAME COMMAND [ARGS...]: run the command, then print "== NAME: W s wall, C s CPU"
# (C: user + system time of the command and every descendant it waited for), keeping its exit
# status. make test's stages run through it, so each run says where the machine's time went.
name=$1; shift
start=$(date +%s)
"$@"
rc=$?
# `times`: this shell's user/system time, then its waited-for children's (the command's tree)
# (line 2, "XmY.YYYs XmY.YYYs": user, system), written to a file: in a pipe it would be a subshell's
tmp=$(mktemp); times > "$tmp"
cpu=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.0f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$tmp")
rm -f "$tmp"
echo "== $name: $(( $(date +%s) - start )) s wall, $cpu s CPU"
exit $rc
