#!/bin/bash
# The lent GPU's one prepared script (.dev/ filled by bench/lent_gpu/prepare.sh, carried): Ray from the stripped
# wheel, the CUDA tests, bench/gpu_eval.py, then the first 20 epochs of the 9 paper trainings through
# run_grid.py (bench/gpu_grid.py; with --mps when MPS=1). BUDGET: seconds for all of it; TESTS=0 skips to the grid.
# PACKS=1: instead of the CUDA tests and gpu_eval, the packs' CUDA tests and bench/gpu_packs.py (steps/s of packs
# of 1, 3, 9 per method) with half the budget, then the grid with its default packs.
set -u
T0=$(date +%s)
BUDGET=${BUDGET:-540}
mkdir -p /tmp/site && tar -xJf .dev/ray.tar.xz -C /tmp/site
pip install -q --no-index --no-deps --target /tmp/site .dev/*.whl .dev/pytest/pytest*.whl .dev/pytest/pluggy*.whl .dev/pytest/iniconfig*.whl 2>&1 | grep -v WARNING | tail -3
python -c "import packaging" 2>/dev/null || pip install -q --no-index --no-deps --target /tmp/site .dev/pytest/packaging*.whl
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import ray, torch; print('ray', ray.__version__, 'torch', torch.__version__)"
echo "setup $(( $(date +%s) - T0 )) s"
if [ "${PACKS:-0}" = 1 ]; then
  timeout 150 python -m pytest -q -p no:cacheprovider tests/test_pack.py -k cuda --tb=short 2>&1 | grep -v "^\s*$" | tail -30
  HALF=$(( (BUDGET - ($(date +%s) - T0)) / 2 ))
  timeout $(( HALF + 25 )) python bench/gpu_packs.py --budget $(( HALF - 30 )) 2>&1 | tee $OUT/packs.txt
  TESTS=0
fi
if [ "${TESTS:-1}" = 1 ]; then
  timeout 150 python -m pytest -q -p no:cacheprovider tests/test_training.py -k "cuda or published" --tb=short 2>&1 | grep -v "^\s*$" | tail -30
  timeout 150 python bench/gpu_eval.py 2>&1 | tee $OUT/eval.txt
fi
echo "before the grid $(( $(date +%s) - T0 )) s"
LEFT=$(( BUDGET - ($(date +%s) - T0) - 20 ))
MPSFLAG=""; [ "${MPS:-0}" = 1 ] && MPSFLAG=--mps
python bench/gpu_grid.py --data .dev/cifar10-jpeg.tar.gz --epochs 10 20 --budget $LEFT $MPSFLAG > $OUT/log.txt 2>&1
echo "gpu_grid exit $?"; grep -v "^(\|^\s*$" $OUT/log.txt | tail -25
cat $OUT/gpu_grid.json
echo "total $(( $(date +%s) - T0 )) s"
