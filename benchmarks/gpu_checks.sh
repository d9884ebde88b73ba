#!/usr/bin/env bash
# The GPU checks of the performance work in one call, for a machine with CUDA (run from the
# repository root; the package need not be installed, its source is put on PYTHONPATH):
#   1. the device tests (tests/test_generate_devices.py, tests/test_stats.py; no data set);
#   2. benchmarks/iteration_cost.py on CUDA, every zoo generator, and the throughput curve;
#   3. benchmarks/synthesis_options.py: eager, own layout and torch.compile's two modes.
# Each part has a time limit, so that one that hangs leaves the others' results.
#   bash benchmarks/gpu_checks.sh [MODELS_DIR] [REFERENCES_H5] [OUT_DIR]
# Defaults: the default run's resources/models, resources/references/fashion_mnist.h5, and
# results/gpu_checks/. The tables land in OUT_DIR.
set -u
models=${1:-resources/models}
references=${2:-resources/references/fashion_mnist.h5}
out=${3:-results/gpu_checks}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
zoo=(--models-dir "$models" --references "$references" --threads 8)

echo "== device tests"
timeout 300 python3 -m pytest -q -p no:cacheprovider -rf tests/test_generate_devices.py \
    tests/test_stats.py 2>&1 | tail -15 | tee "$out/tests.txt"
echo "== iteration cost"
timeout 300 python3 benchmarks/iteration_cost.py "${zoo[@]}" --repeats 2 \
    --batch-sizes 1,4,16,64,256,1024 2>&1 | tee "$out/iteration_cost.txt"
echo "== synthesis options"
timeout 300 python3 benchmarks/synthesis_options.py "${zoo[@]}" \
    --generators cnn_s0:relu2,resnet_s0:layer3 \
    --variants eager,own-layout,compile,compile-graphs 2>&1 | tee "$out/synthesis_options.txt"
