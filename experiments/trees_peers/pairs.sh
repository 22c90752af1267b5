#!/usr/bin/env bash
# Two trainings at once, one thread each, on the trees tiles for a 10-minute wall-clock budget: ours beside a peer,
# so both share the machine alike. PEERS: a scratch venv with ultralytics and yolov5==7.0.14 (never a dependency).
#   bash experiments/trees_peers/pairs.sh ours-vs-yolo11n SEED
#   bash experiments/trees_peers/pairs.sh ours-vs-yolov5n SEED EPOCHS   (yolov5 has no time budget: pick EPOCHS
#                                                                        that fill the 10 minutes on your machine)
#   bash experiments/trees_peers/pairs.sh ours-vs-ours SEED SEED2        (OURS_FLAGS against OTHER_FLAGS)
# OURS_FLAGS: extra train.py flags of our run (e.g. "--cfg yolov4-tiny-3l-s"), NAME its run name (default ours-sSEED).
# DATA: datasets/trees/trees.yaml from tools/make_trees.py; PEER_DATA: the same tiles and labels without the class -1
# (ignore) rows, which both peers reject, and with an absolute `path:`.
set -euo pipefail
which=$1; seed=${2:-0}; epochs=${3:-38}
PEERS=${PEERS:-/work/peers}; DATA=${DATA:-datasets/trees/trees.yaml}; PEER_DATA=${PEER_DATA:-}
OUT=${OUT:-runs/trees_peers}
export OMP_NUM_THREADS=1
# shellcheck disable=SC2086  # the flags are meant to split
python tools/train.py --data "$DATA" --time 0.167 --workers 1 --seed "$seed" --project "$OUT" \
  --name "${NAME:-ours-s$seed}" ${OURS_FLAGS:-} &
if [ "$which" = ours-vs-ours ]; then
  # shellcheck disable=SC2086
  python tools/train.py --data "$DATA" --time 0.167 --workers 1 --seed "$epochs" --project "$OUT" \
    --name "${NAME2:-other-s$epochs}" ${OTHER_FLAGS:-} &
elif [ "$which" = ours-vs-yolo11n ]; then
  "$PEERS/bin/yolo" train model=yolo11n.yaml data="$PEER_DATA" imgsz=320 time=0.167 device=cpu workers=1 \
    seed="$seed" pretrained=False amp=False project="$PWD/$OUT" name="yolo11n-s$seed" &
else
  # TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD: yolov5 7.0's torch.load predates torch 2.6's weights_only default
  TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$PEERS/bin/yolov5" train --img 320 --batch 16 --epochs "$epochs" \
    --data "$PEER_DATA" --cfg yolov5n.yaml --weights '' --workers 1 --device cpu --seed "$seed" \
    --project "$OUT" --name "yolov5n-s$seed" &
fi
wait
