#!/usr/bin/env bash
# One 256³ HA-GAN volume from a whole process: `jaxsyn generate --n 1` (cold compilation cache,
# then warm) against a PyTorch process that builds the reference generator (its module names,
# tests/compat/reference_torch.py) and makes one volume in one pass. The jaxsyn run is the same
# generator: its random PyTorch weights saved as the reference's train.py saves them and imported
# with `jaxsyn import hagan`. Needs torch (make .venv/.installed-peers).
#   bash benchmarks/cli_startup.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-$(mktemp -d)}
PY=.venv/bin/python
$PY - "$W" <<'PYEOF'
import sys, torch
from pathlib import Path
sys.path.insert(0, ".")
from tests.compat import reference_torch as R
w = Path(sys.argv[1]); (w / "ckpt").mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
g = R.Generator(size=256)
torch.save({"model": g.state_dict(), "optimizer": {}}, w / "ckpt" / "G_iter1.pth")
PYEOF
rm -rf "$W/run" "$W/cache" "$W/gen1" "$W/gen2"
.venv/bin/jaxsyn import hagan --checkpoint-dir "$W/ckpt" --iteration 1 --size 256 --out "$W/run"
cat > "$W/torch_one.py" <<'PYEOF'
import sys, torch
sys.path.insert(0, ".")
from tests.compat import reference_torch as R
torch.set_num_threads(2)
g = R.Generator(size=256, mode="eval")
g.load_state_dict(torch.load(sys.argv[1])["model"])
with torch.no_grad():
    v = g(torch.randn(1, 1024), 0)
print(tuple(v.shape))
PYEOF
t() { /usr/bin/time -f "$1: %e s wall, %M KiB peak RSS" "${@:2}" > /dev/null; }
t "jaxsyn generate, cold cache" env JAXSYN_CACHE_DIR="$W/cache" .venv/bin/jaxsyn generate --run "$W/run" --n 1 --out "$W/gen1"
t "jaxsyn generate, warm cache" env JAXSYN_CACHE_DIR="$W/cache" .venv/bin/jaxsyn generate --run "$W/run" --n 1 --out "$W/gen2"
t "jaxsyn generate, no cache" .venv/bin/jaxsyn --no-compile-cache generate --run "$W/run" --n 1 --out "$W/gen3"
t "torch process (reference G, one pass)" $PY "$W/torch_one.py" "$W/ckpt/G_iter1.pth"
