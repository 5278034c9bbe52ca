#!/usr/bin/env bash
# The study's scale end to end, once: two months of APO arcs (60 nights from 2024-01-04, 13 fields a
# night, seed 11: 1,758 arcs of b1 and r1 downloaded, Hartmann frames skipped) through every stage
# command, each under benchmarks/scale_watch.py (wall time, peak PSS of its whole process tree).
#
#   nice -n 19 benchmarks/two_months.sh /tmp/C   # WORK dir: world, pipeline root, runs.jsonl
#
# The world is rendered with its frames (~0.8 s of CPU and ~11 MB each: 2,058 frames, 22 GB; the
# archive server does not render on request). Download runs in CHUNKS of nights; with
# DELETE_SERVED=1 the world's frames of a chunk are deleted once it is downloaded, so the frames are
# on disk about once (22 GB under ROOT/raw) instead of twice.
# Stages are idempotent: a rerun skips what is done. STAGES="calibrate measure" reruns some only.
# Train runs ONE latent (4) for EPOCHS epochs, not a Tune search.
set -euo pipefail
WORK=${1:?usage: two_months.sh WORKDIR}
NIGHTS=${NIGHTS:-60}; FIELDS=${FIELDS:-13}; SEED=${SEED:-11}; EPOCHS=${EPOCHS:-3}; LATENT=${LATENT:-4}
STAGES=${STAGES:-"render serve scrape download calibrate measure train embed analyze regress predict report"}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN=$HERE/.venv/bin
WORLD=$WORK/w60; ROOT=$WORK/r60; LOG=$WORK/runs.jsonl
USER_=observer@example.org; PW=$WORK/secrets/pw
mkdir -p "$WORK/secrets"; umask 077
[ -s "$PW" ] || "$BIN/python" -c "import secrets; print(secrets.token_urlsafe(18))" > "$PW"
umask 022
has() { [[ " $STAGES " == *" $1 "* ]]; }
w() { local name=$1; shift; "$BIN/python" "$HERE/benchmarks/scale_watch.py" --log "$LOG" --name "$name" -- "$@"; }

if has render && [ ! -s "$WORLD/truth.parquet" ]; then
  w render "$BIN/arcray" sim render --out "$WORLD" --start 2024-01-04 --nights "$NIGHTS" --fields "$FIELDS" \
    --cameras b1,r1 --flavors arc --seed "$SEED" --workers 2 --no-progress
fi
PORT=$("$BIN/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
"$BIN/arcray" sim serve --root "$WORLD" --user "$USER_" --password-file "$PW" --port "$PORT" > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
sleep 3
BASE=http://127.0.0.1:$PORT
SAS=$(grep '^sas:' "$WORK/serve.log" | awk '{print $2}')
MAIL=$(grep '^mailman:' "$WORK/serve.log" | awk '{print $2}')
LAST=$("$BIN/python" -c "from datetime import date,timedelta; d=date(2024,1,4)+timedelta(days=$NIGHTS); print(f'{d.year}-{d.month:02d}')")

has scrape && w scrape "$BIN/arcray" scrape --base-url "$MAIL" --root "$ROOT" --months "2024-01..$LAST" \
  --user "$USER_" --password-file "$PW" --no-progress
if has download; then
  CHUNK=${CHUNK:-15}; M0=60314
  for ((lo = M0; lo < M0 + NIGHTS; lo += CHUNK)); do
    hi=$((lo + CHUNK - 1))
    w "download-$lo" "$BIN/arcray" download --base-url "$SAS" --root "$ROOT" --flavors arc --cameras b1,r1 \
      --mjd-min "$lo" --mjd-max "$hi" --user "$USER_" --password-file "$PW" --workers 4 --no-progress
    if [ "${DELETE_SERVED:-0}" = 1 ]; then
      for ((m = lo; m <= hi; m++)); do rm -rf "$WORLD/sas/sdsswork/data/boss/spectro/apo/$m"; done
    fi
  done
fi
kill $SERVER 2>/dev/null || true
has calibrate && w calibrate "$BIN/arcray" calibrate --root "$ROOT" --workers 2 --no-progress
has measure && w measure "$BIN/arcray" measure --root "$ROOT" --no-progress
has train && w train "$BIN/arcray" train --root "$ROOT" --cameras b1,r1 --latent "$LATENT" --epochs "$EPOCHS"
has embed && w embed "$BIN/arcray" embed --root "$ROOT" --latent "$LATENT"
has analyze && w analyze "$BIN/arcray" analyze --root "$ROOT" --latent "$LATENT"
has regress && w regress "$BIN/arcray" regress --root "$ROOT" --latent "$LATENT" --truth "$WORLD/truth.parquet"
if has predict; then
  # every test night of the MJD split (predict is per night, as the nightly job runs it)
  for MJD in $("$BIN/python" -c "
import pandas as pd; t = pd.read_parquet('$WORLD/truth.parquet')
from arcray.model.split import split_of_mjd as split_of
print(' '.join(str(m) for m in sorted(t.mjd.unique()) if split_of(int(m)) == 'test' and m < 60314 + $NIGHTS))" 2>/dev/null || true); do
    w "predict-$MJD" "$BIN/arcray" predict --root "$ROOT" --mjd "$MJD" --no-progress || true
  done
fi
has report && w report "$BIN/arcray" report --root "$ROOT"
echo "done: $LOG"
