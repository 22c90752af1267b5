#!/usr/bin/env bash
# Issue 28's defaults check on real photographs with a class term: the trees in two classes (`tree`, `dead`:
# python tools/make_trees.py --two-class --out datasets/trees2), fixed epochs (load-independent), two trainings
# at once with one thread each. Settings: the trainer's default class gain `sqrt-cap4` (x4 at 2 classes) with
# label smoothing 0 and 0.1, and yolov5's gain with 0; seeds 0 1 2. Each run is then scored on the held-out scene
# whole, sliced (tools/eval.py --json-out). Summaries: experiments/trees_peers/two_class.md (two_class_table.py).
#   bash experiments/trees_peers/two_class.sh [EPOCHS]
set -euo pipefail
epochs=${1:-60}; DATA=${DATA:-datasets/trees2/trees.yaml}; OUT=${OUT:-runs/trees2}
export OMP_NUM_THREADS=1
run() {  # gain eps seed
  local name="$1-e$2-s$3" w
  w="$OUT/$name/weights/last.pt"
  [ -f "$OUT/$name/sliced.json" ] && return 0
  python tools/train.py --data "$DATA" --epochs "$epochs" --workers 1 --seed "$3" --cls-scaling "$1" \
    --label-smoothing "$2" --project "$OUT" --name "$name" --exist-ok > "$OUT/$name.log" 2>&1
  python tools/eval.py --weights "$w" --data "$DATA" --task val_full --slice 320 --max-det 1000 \
    --coco-max-dets 300 --workers 1 --noplots --json-out "$OUT/$name/sliced.json" >> "$OUT/$name.log" 2>&1
}
mkdir -p "$OUT"
jobs_=()
for seed in 0 1 2; do
  for s in "sqrt-cap4 0" "sqrt-cap4 0.1" "yolov5 0"; do jobs_+=("$s $seed"); done
done
for ((i = 0; i < ${#jobs_[@]}; i += 2)); do
  run ${jobs_[i]} &
  if ((i + 1 < ${#jobs_[@]})); then run ${jobs_[i + 1]} & fi
  wait
done
