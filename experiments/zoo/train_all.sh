#!/usr/bin/env bash
# The model library that ships inside jaxsyn (jaxsyn/zoo/models/): one small model per family,
# trained on phantoms (the tabular one on sklearn's diabetes study, 442 real patients shipped inside
# scikit-learn), evaluated with `jaxsyn evaluate`, packed with its metrics and installed.
#   bash experiments/zoo/train_all.sh [WORK]            (default WORK: zoo_out, git-ignored)
#   STAGES="train" bash experiments/zoo/train_all.sh    (train only; rerunning skips finished runs)
# STAGES: any of train, eval, pack (default: all three); ONLY: some of the model names below. pack installs into jaxsyn/zoo/models/,
# replacing a model of the same id. How long it took, and under what load: experiments/zoo/README.md.
set -euo pipefail
J=${JAXSYN:-.venv/bin/jaxsyn}
PY=${PYTHON:-.venv/bin/python}
W=${1:-zoo_out}
STAGES=${STAGES:-train eval pack}
LIB=jaxsyn/zoo/models
CARDS=experiments/zoo/cards
mkdir -p "$W"
has() { [[ " $STAGES " == *" $1 "* ]]; }
ONLY=${ONLY:-hagan mmcgan ctgan acgan proggan cpdgan duiit}  # the models to make (default: all)
wanted() { [[ " $ONLY " == *" $1 "* ]]; }
stamp() { echo "[$(date +%H:%M:%S)] $*"; }

# --- data: phantoms (train / holdout / test seeds) and the diabetes table ------------------------
[ -d "$W/ct" ] || $J phantom ct --n 32 --size 32 --seed 0 --out "$W/ct"
[ -d "$W/ct-store" ] || $J ingest --images "$W/ct" --table "$W/ct/table.csv" --size 32 --out "$W/ct-store"
[ -d "$W/ct-holdout" ] || $J phantom ct --n 16 --size 32 --seed 1 --out "$W/ct-holdout"
[ -d "$W/ct-test" ] || $J phantom ct --n 16 --size 32 --seed 2 --out "$W/ct-test"
for kind in cxr headct vertebra; do
  [ -d "$W/$kind" ] || $J phantom $kind --n 256 --size 32 --seed 0 --out "$W/$kind"
  [ -d "$W/$kind-holdout" ] || $J phantom $kind --n 128 --size 32 --seed 1 --out "$W/$kind-holdout"
  # utility (CLF.* in the cards): a labelled real test set, seed 2, never trained on or held out
  [ -d "$W/$kind-test" ] || $J phantom $kind --n 128 --size 32 --seed 2 --out "$W/$kind-test"
done
if wanted duiit; then  # DUIIT trains on in-memory phantoms (seed 0); held-out MRI and CT: seed 1
  for m in ct mri; do
    [ -d "$W/head-$m-holdout" ] || $J phantom head --modality $m --n 256 --size 32 --seed 1 --out "$W/head-$m-holdout"
  done
fi
if [ ! -f "$W/diabetes/test.csv" ]; then  # 342 train; the 100 held out: 50 privacy, 50 utility
  mkdir -p "$W/diabetes"
  $PY - "$W/diabetes" <<'PYEOF'
import sys
from sklearn.datasets import load_diabetes
t = load_diabetes(as_frame=True, scaled=False).frame.sample(frac=1.0, random_state=0)
t.iloc[:342].to_csv(f"{sys.argv[1]}/train.csv", index=False)
t.iloc[342:392].to_csv(f"{sys.argv[1]}/holdout.csv", index=False)
t.iloc[392:].to_csv(f"{sys.argv[1]}/test.csv", index=False)
PYEOF
fi

# --- train (a finished run is kept) -------------------------------------------------------------
train() {  # NAME, then `jaxsyn train` arguments
  local name=$1; shift
  if ! wanted "$name" || [ -f "$W/runs/$name/.done" ]; then return; fi
  stamp "train $name"
  $J train "$@" --out "$W/runs/$name"
  touch "$W/runs/$name/.done"
}
if has train; then
  train hagan hagan --tiny --data "$W/ct-store" --condition-columns bmi_class --num-classes 4 \
    --steps 300 --checkpoint-every 300 --preview-every 100000
  train mmcgan mmcgan --tiny --data "$W/ct-store" --condition-columns bmi_class --num-classes 4 \
    --steps 300 --checkpoint-every 300 --config.batch_size=4
  train ctgan ctgan --tiny --data "$W/diabetes/train.csv" --discrete sex --epochs 100 \
    --checkpoint-every 100000
  train acgan acgan --tiny --data "$W/vertebra" --steps 400 --checkpoint-every 400
  train proggan proggan --tiny --data "$W/cxr" --steps 400 --checkpoint-every 400
  train cpdgan cpdgan --tiny --data "$W/headct" --steps 400 --checkpoint-every 400
  # MRI -> CT, the joint setting (translator + age regressor), CT scarce; tiny at 32 px, G width 8
  train duiit duiit --tiny --target phantom:head-ct:64 --source phantom:head-mri:256 --label age \
    --config.model.translator.size=32 --config.model.translator.g_width=8 --steps 4000 \
    --checkpoint-every 4000
  stamp "trained"
fi

# --- generate and evaluate ----------------------------------------------------------------------
evaluate() {  # NAME REAL HOLDOUT N [evaluate arguments]; HOLDOUT "" for none
  local name=$1 real=$2 holdout=$3 n=$4; shift 4
  if ! wanted "$name" || [ -f "$W/reports/$name/report.json" ]; then return; fi
  stamp "evaluate $name"
  rm -rf "$W/gen/$name"
  if [ "$name" = hagan ]; then  # conditioned on bmi_class, one class per call: n/4 of each
    mkdir -p "$W/gen/hagan"
    for c in 0 1 2 3; do
      $J generate --run "$W/runs/hagan" --n $((n / 4)) --condition bmi_class=$c --seed $c \
        --out "$W/gen/hagan-class$c"
      for f in "$W/gen/hagan-class$c"/*.nii.gz; do mv "$f" "$W/gen/hagan/class${c}_$(basename "$f")"; done
    done
  elif [ "$name" = duiit ]; then  # a translator: the held-out MRI phantoms, translated
    $J translate --run "$W/runs/duiit" --images "$W/head-mri-holdout" --n "$n" --out "$W/gen/duiit"
  else
    $J generate --run "$W/runs/$name" --n "$n" --out "$W/gen/$name" --seed 0
  fi
  $J evaluate --real "$real" --synthetic "$W/gen/$name" ${holdout:+--holdout "$holdout"} \
    --ids-per-folder --out "$W/reports/$name" "$@"
}
# utility (the cards' CLF.*): train on real vs on synthetic, test on the seed-2 phantoms (the
# diabetes test split), 5 seeds; small classifiers, 10 epochs, so each takes minutes on 2 cores
CLF2D="--utility-model resnet-tiny --utility-epochs 10"
CLF3D="--utility-model resnet3d-tiny --utility-epochs 10 --volume-size 32"  # 32³: as generated
if has eval; then
  evaluate hagan "$W/ct" "$W/ct-holdout" 16 --features pixels
  evaluate mmcgan "$W/ct" "$W/ct-holdout" 16 --features pixels \
    --test "$W/ct-test" --labels bmi_class $CLF3D
  # the target: sex (the one binary column; CTGAN models it as a category); the table utility
  # scores classifiers (AUROC), and binarising the progression would change the evaluated tables
  evaluate ctgan "$W/diabetes/train.csv" "$W/diabetes/holdout.csv" 342 \
    --test "$W/diabetes/test.csv" --labels sex
  evaluate acgan "$W/vertebra" "$W/vertebra-holdout" 256 --features pixels \
    --test "$W/vertebra-test" --labels region $CLF2D
  evaluate proggan "$W/cxr" "$W/cxr-holdout" 256 --features pixels --test "$W/cxr-test" \
    --labels enlarged_heart,pleural_effusion,nodule,pneumothorax,consolidation,support_device $CLF2D
  evaluate cpdgan "$W/headct" "$W/headct-holdout" 256 --features pixels --test "$W/headct-test" \
    --labels epidural,subdural,subarachnoid,intraparenchymal,intraventricular $CLF2D
  # translated held-out MRI vs held-out real CT (no --holdout: a translator draws no new
  # patients, so the membership attacks do not apply); the untranslated MRI as the baseline
  evaluate duiit "$W/head-ct-holdout" "" 256 --features pixels
  if wanted duiit && [ ! -f "$W/reports/duiit-source/report.json" ]; then
    $J evaluate --real "$W/head-ct-holdout" --synthetic "$W/head-mri-holdout" --ids-per-folder \
      --out "$W/reports/duiit-source" --features pixels
  fi
  stamp "evaluated"
fi

# --- pack with the metrics and install into the shipped library ---------------------------------
if has pack; then
  for name in $ONLY; do
    card="$CARDS/$name.json"
    stamp "pack $name ($card)"
    $J models pack "$W/runs/$name" --card "$card" --report "$W/reports/$name" \
      --out "$W/packed/$name.zip"
    $J models add "$W/packed/$name.zip" --library "$LIB" --replace
  done
  du -sh "$LIB"
  stamp "packed"
fi
