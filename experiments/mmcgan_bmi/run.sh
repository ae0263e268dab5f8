#!/usr/bin/env bash
# Does a CPU-sized MMCGAN carry the BMI -> fat relation into its synthetic volumes?
#   bash experiments/mmcgan_bmi/run.sh [OUT] [STEPS] [EXTRA TRAIN ARGS...]
# Phantom cohort (48 patients, 32³) -> store -> tiny MMCGAN conditioned on bmi_class -> 64
# synthetic patients -> report (Spearman rho between bmi_class and fat fraction, real and synthetic).
set -euo pipefail
OUT=${1:-mmcgan_bmi_out}
STEPS=${2:-1500}
shift $(( $# > 2 ? 2 : $# )) || true
J=${JAXSYN:-.venv/bin/jaxsyn}
rm -rf "$OUT"
start=$(date +%s)
$J phantom ct --n 48 --size 32 --seed 0 --out "$OUT/phantoms"
$J ingest --images "$OUT/phantoms" --table "$OUT/phantoms/table.csv" --size 32 --out "$OUT/store"
$J train mmcgan --tiny --data "$OUT/store" --condition-columns bmi_class --steps "$STEPS" \
    --checkpoint-every "$STEPS" --config.batch_size=4 --out "$OUT/run" "$@"
trained=$(date +%s)
$J generate --run "$OUT/run" --n 64 --out "$OUT/cohort"
$J report --real "$OUT/phantoms" --synthetic "$OUT/cohort" --run "$OUT/run" --out "$OUT/report"
end=$(date +%s)
echo "train $((trained - start)) s, generate + report $((end - trained)) s"
