#!/usr/bin/env bash
# The accelerator rows of issue 21, one command, one JSON file:
#
#   benchmarks/device_check.sh [--quick] [--memory] [--only FAMILY,...] [--out FILE.json]
#
#   HA-GAN 256³ training at batch 1, 4, 8 in float32 and bfloat16; 256³ generation (volumes/s,
#   one pass); MMCGAN's joint step (image heads trained every step) at 256³; CTGAN training and
#   sampling (rows/s) drawing from a 1,000,000-row table; prog-GAN, cpD-GAN and AC-GAN training
#   and generation at 128 px; DUIIT's joint step at 128 px, batch 16 per cohort. Each row is
#   `jaxsyn bench` (its own process: step time, samples/s, analytic FLOPs and MFU against the
#   device's peak, compiled memory, compile time, peak RSS).
#   --memory adds `jaxsyn bench --memory`: HA-GAN 256³ training's compiled memory for each remat
#   policy at batch 1, 2, 4, 8 (compiled, not run).
#   --quick: the same rows at toy sizes with the tiny configs (16-32 px, 2,000 rows), for a CPU:
#   proves the script end to end (float32 only), measures nothing worth keeping. --only runs the rows of the named families alone.
#
# Sized for under 8 minutes on one H100 (each row also has a time limit, so a slow compile
# cannot eat the rest). Nothing is downloaded: it needs, already on the machine,
#   * this working tree with its virtual environment built by `make` (.venv: jaxsyn installed
#     editable with its dependencies), or VENV=/path/to/venv;
#   * on a GPU, the CUDA wheels of the same jax version inside that environment
#     (`pip install "jax[cuda12]==$(python -c 'import jax; print(jax.__version__)')"`, i.e.
#     jax-cuda12-plugin and jax-cuda12-pjrt, which bring the CUDA/cuDNN libraries), and an NVIDIA
#     driver; on a TPU VM, jax[tpu]'s libtpu. Check with: .venv/bin/python -c "import jax; print(jax.devices())"
# Writes benchmarks/device_check.json (or --out) holding every row, the device and the command.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
VENV="${VENV:-$ROOT/.venv}"
JAXSYN="$VENV/bin/jaxsyn"
PY="$VENV/bin/python"
QUICK=0
MEMORY=0
OUT="$HERE/device_check.json"
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --memory) MEMORY=1 ;;
    --out) OUT="$2"; shift ;;
    --out=*) OUT="${1#--out=}" ;;
    --only) ONLY="$2"; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "device_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$JAXSYN" ] || { echo "device_check.sh: $JAXSYN not found: build the venv with make (or set VENV)" >&2; exit 1; }

PARTS="$(mktemp -d)"
trap 'rm -rf "$PARTS"' EXIT
START=$(date +%s)
"$PY" -c "import jax; print('devices:', jax.devices())"

if [ "$QUICK" = 1 ]; then
  V=32; B3=1; BM=2; ROWS=2000; BT=20; BS=200; P=16; B2=4; BD=4; DT=float32; DT2=float32
  STEPS=1; TINY=--tiny; LIMIT=900
else
  V=256; B3="1,4,8"; BM=2; ROWS=1000000; BT=500; BS=100000; P=128; B2=32; BD=16
  DT=float32,bfloat16; DT2=float32,bfloat16; STEPS=3; TINY=; LIMIT=150
fi

n=0
bench() {  # bench FAMILIES ARGS...: one `jaxsyn bench` call -> $PARTS/<n>.json; a failed row
  # is reported (kept in the JSON with its error) and the others go on
  local families="$1"
  shift
  if [ -n "$ONLY" ]; then
    families="$(tr ',' '\n' <<<"$families" | grep -Fxf <(tr ',' '\n' <<<"$ONLY") | paste -sd, || true)"
    [ -n "$families" ] || return 0
  fi
  set -- --family "$families" "$@"
  n=$((n + 1))
  echo "== jaxsyn bench $* ($(( $(date +%s) - START )) s so far)"
  "$JAXSYN" --no-compile-cache bench "$@" $TINY --steps "$STEPS" --row-timeout "$LIMIT" \
    --out "$PARTS/$n.json" || echo "(some rows failed: kept in the JSON with their error)"
}

bench hagan --workload train --size "$V" --batch "$B3" --dtype "$DT"
bench hagan --workload generate --size "$V" --batch 1 --dtype "$DT2"
bench mmcgan --workload train --size "$V" --batch "$BM" --dtype float32
bench ctgan --size "$ROWS" --batch "$BT" --workload train --dtype float32
bench ctgan --size "$ROWS" --batch "$BS" --workload generate --dtype float32
bench proggan,cpdgan,acgan --size "$P" --batch "$B2" --dtype "$DT2"
bench duiit --workload train --size "$P" --batch "$BD" --dtype float32
if [ "$MEMORY" = 1 ]; then
  bench hagan --workload train --size "$V" --batch 1,2,4,8 --memory
fi

"$PY" - "$OUT" "$PARTS" "$*" <<'PYEOF'
import json, platform, sys, time
from pathlib import Path

import jax

from jaxsyn.files import write_json

out, parts = Path(sys.argv[1]), sorted(Path(sys.argv[2]).glob("*.json"), key=lambda p: int(p.stem))
runs = [json.loads(p.read_text()) for p in parts]
device = jax.devices()[0]
write_json(out, {
    "script": "benchmarks/device_check.sh",
    "device_kind": device.device_kind,
    "device_count": len(jax.devices()),
    "backend": device.platform,
    "jax": jax.__version__,
    "platform": platform.platform(),
    "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
    "commands": [r.get("command") for r in runs],
    "rows": [row for r in runs for row in r["rows"]],
})
print(f"wrote {out}: {sum(len(r['rows']) for r in runs)} rows")
PYEOF
echo "device_check.sh: $(( $(date +%s) - START )) s"
