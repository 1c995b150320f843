#!/usr/bin/env bash
# tools/timed.sh NAME COMMAND [ARGS...]: run the command, then print "== NAME: W s wall, C s CPU"
# (C: user + system time of the command and every descendant it waited for), keeping its exit
# status. make test's stages run through it, so each run says where the machine's time went.
name=$1; shift
start=$(date +%s)
"$@"
rc=$?
# `times`: this shell's user/system time, then its waited-for children's (the command's tree)
tmp=$(mktemp); times > "$tmp"; read -r _ _ cu cs < <(tr '\n' ' ' < "$tmp"); rm -f "$tmp"
secs() { [[ $1 =~ ^([0-9]+)m([0-9.]+)s$ ]] && echo "${BASH_REMATCH[1]} * 60 + ${BASH_REMATCH[2]}"; }
cpu=$(echo "$(secs "$cu") + $(secs "$cs")" | bc)
printf "== %s: %d s wall, %.0f s CPU\n" "$name" $(( $(date +%s) - start )) "$cpu"
exit $rc
