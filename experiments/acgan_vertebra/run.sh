#!/usr/bin/env bash
# AC-GAN on the vertebral-unit phantom, evaluated end to end (fidelity, privacy, utility), with
# the generator's BatchNorm off (the reference's default) and on. About 5 minutes on 2 CPU cores.
#   bash experiments/acgan_vertebra/run.sh [OUT]   (default OUT: acgan_vertebra_out, git-ignored by name)
set -euo pipefail
J=${JAXSYN:-.venv/bin/jaxsyn}
OUT=${1:-acgan_vertebra_out}
rm -rf "$OUT"
$J phantom vertebra --n 600 --size 32 --out "$OUT/train" --seed 0
$J phantom vertebra --n 300 --size 32 --out "$OUT/holdout" --seed 1
$J phantom vertebra --n 300 --size 32 --out "$OUT/test" --seed 2
for bn in false true; do
  $J train acgan --data "$OUT/train" --out "$OUT/run-bn-$bn" --steps 2000 --config.size=32 \
    --config.width=16 --config.batch_size=32 --config.batch_norm=$bn --checkpoint-every 1000
  $J generate --run "$OUT/run-bn-$bn" --n 600 --out "$OUT/gen-bn-$bn" --seed 0
  $J morph --run "$OUT/run-bn-$bn" --from cervical --to lumbar --frames 6 --out "$OUT/strip-bn-$bn.png"
  $J evaluate --real "$OUT/train" --synthetic "$OUT/gen-bn-$bn" --holdout "$OUT/holdout" \
    --test "$OUT/test" --ids-per-folder --labels region --utility-model resnet-tiny --utility-epochs 8 \
    --features pixels --features domain --out "$OUT/report-bn-$bn"
done
