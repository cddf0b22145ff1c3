#!/usr/bin/env bash
# Every GPU measurement of issue 8 in one run, on a machine with one NVIDIA GPU; each table goes
# to a markdown file under the output folder (first argument, else $OUT, else bench-out/).
#
#   gpu_selftest.md  CUDA-graph steps against dynamic ones (codes, latents), host syncs per step,
#                    graph capture time and memory, step time per batch size
#   batch.md         bench_batch.py: N = 1 ... 256 streams, batched (graphs) against one stream at
#                    a time, one stream per process and the reference (these three for
#                    N <= MAX_PROCESSES, 16 by default: the N-th of them waits for N-1 streams)
#   precision.md     bench_precision.py: fp16 and bf16 against fp32 in audio
#
# Needs a python ($PYTHON, else python3) with CUDA torch and xtts-core[inference] importable, e.g.
#   pip install -e 'packages/xtts-core[inference]'
# and coqui-tts for the reference rows (without it they are skipped). The release-size random
# checkpoint is written on first use (~2 GB under .cache/bench/). Every step has its own time
# limit, so one that hangs costs its limit, not the run; about 8 minutes in all on an H100.
#
# On a machine without a GPU, `DEVICE=cpu SIZE=tiny DTYPE=bf16 STREAMS="1 2" bench/gpu_matrix.sh`
# runs the same steps small, which is how this script is checked.
set -uo pipefail

out=${1:-${OUT:-bench-out}}
device=${DEVICE:-cuda}
size=${SIZE:-release}
dtype=${DTYPE:-bf16}
streams=${STREAMS:-1 4 16 64 128 256}  # unquoted below on purpose: one argument per size
max_processes=${MAX_PROCESSES:-16}
python=${PYTHON:-python3}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")" || exit 1
export PYTHONUNBUFFERED=1

failed=0
run() {  # run LIMIT_S NAME COMMAND...: the command's output to NAME.md and to the terminal
    local limit=$1 name=$2
    shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.md"
    local status=${PIPESTATUS[0]}
    [ "$status" -eq 0 ] || { echo "== $name failed with status $status"; failed=1; }
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null | tee "$out/machine.md"
run 150 gpu_selftest "$python" gpu_selftest.py --size "$size" --device "$device" --dtype "$dtype" \
    --streams "${streams##* }"
run 300 batch "$python" bench_batch.py --size "$size" --device "$device" --dtype "$dtype" \
    --streams $streams --max-processes "$max_processes" --max-sequential "$max_processes"
run 120 precision "$python" bench_precision.py --size "$size" --device "$device"
exit "$failed"
