#!/usr/bin/env bash
# The unit's ExecStartPre that creates the API token (units/foundationd.service),
# run as written (systemd's "\\" unescaped; /etc/foundationd and the group
# replaced by a scratch directory and the caller's group) under strace: the
# new file is fsynced before its rename and the directory after it, the token
# is 32 random bytes in hex, mode 0640, and a second start keeps it.
#   tests/units/check_token_file.sh units/foundationd.service
set -euo pipefail
unit="$1"
command -v strace >/dev/null || { echo "strace missing (scripts/install-deps --test)"; exit 1; }
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
line="$(grep -E '^ExecStartPre=\+/bin/sh -c .*api-token' "$unit")" ||
  { echo "no ExecStartPre creating the API token in $unit"; exit 1; }
script="${line#ExecStartPre=+/bin/sh -c \'}"
script="${script%\'}"
script="${script//\\\\/\\}"
script="${script//\/etc\/foundationd/$dir}"
script="${script//chgrp foundationd/chgrp $(id -gn)}"

strace -f -y -qq -e trace=fsync,fdatasync,rename,renameat,renameat2 -o "$dir/trace" \
  /bin/sh -c "$script"
fail=0
token="$dir/api-token"
grep -qE '^[0-9a-f]{64}$' "$token" || { echo "token: not 64 hex digits: $(wc -c <"$token") bytes"; fail=1; }
[[ "$(stat -c %a "$token")" == 640 ]] || { echo "token: mode $(stat -c %a "$token"), want 640"; fail=1; }
[[ ! -e "$token.new" ]] || { echo "token: $token.new left behind"; fail=1; }
# The order of the calls: fsync(api-token.new) < rename(.new -> api-token) < fsync(dir).
n_sync_new=$(grep -nE 'f(data)?sync\([0-9]+<[^>]*/api-token\.new>' "$dir/trace" | head -n1 | cut -d: -f1 || true)
n_rename=$(grep -nE 'rename(at2?)?\(.*api-token\.new.*api-token' "$dir/trace" | head -n1 | cut -d: -f1 || true)
n_sync_dir=$(grep -nE "f(data)?sync\([0-9]+<${dir}>\)" "$dir/trace" | tail -n1 | cut -d: -f1 || true)
if [[ -z "$n_sync_new" || -z "$n_rename" || -z "$n_sync_dir" ]] ||
   ((n_sync_new > n_rename || n_rename > n_sync_dir)); then
  echo "token: want fsync(new) < rename < fsync(dir); got lines ${n_sync_new:-none} ${n_rename:-none} ${n_sync_dir:-none}:"
  cat "$dir/trace"
  fail=1
fi
# A second start keeps the token.
before="$(cat "$token")"
/bin/sh -c "$script"
[[ "$(cat "$token")" == "$before" ]] || { echo "token: replaced on the second start"; fail=1; }
((fail == 0)) && echo "token file: created 0640, fsynced before the rename, directory fsynced after; kept on restart"
exit "$fail"
