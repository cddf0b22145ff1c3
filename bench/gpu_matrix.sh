#!/usr/bin/env bash
# Every GPU measurement of issues 8 and 15 in one run, on a machine with one NVIDIA GPU; each
# table goes to a markdown file under the output folder (first argument, else $OUT, else
# bench-out/).
#
#   machine.md       the GPU, torch, and `pip check` (a carried kit that misses a version shows here)
#   imports.md       every module the steps import, imported once up front (a missing wheel fails
#                    here, in seconds, not minutes into a step)
#   checkpoint.md    the release-size random checkpoint written (~2 GB under .cache/bench/)
#   gpu_selftest.md  CUDA-graph steps against dynamic ones (codes, latents), host syncs per step,
#                    graph capture time and memory, step time per batch size
#   batch.md         bench_batch.py: N = 1 ... 256 streams, batched (graphs) against one stream at
#                    a time, one stream per process and the reference (these three for
#                    N <= MAX_PROCESSES, 16 by default: the N-th of them waits for N-1 streams)
#   precision.md     bench_precision.py: fp16 and bf16 against fp32 in audio
#   serving.md       bench_balancer.py: a balancer with one worker of max(SERVING) batched slots
#                    on $DEVICE under N = SERVING websocket sessions at once; per session first
#                    audio, RTF and whether playback keeps up (real time)
#
# Needs a python ($PYTHON, else python3) with CUDA torch and the wheels of bench/device_kit.txt
# (what the lent GPU machines' image lacks: bench/device_kit.sh downloads them and prints the one
# command that installs them there and runs this script), or any env with xtts-core[inference]
# and xtts-balancer; coqui-tts for the reference rows (without it they are skipped). This
# checkout's packages come first on PYTHONPATH, so nothing of ours needs installing. Every step
# has its own time limit (LIMITS, seconds, in the order above from checkpoint on; 500 s in all),
# so one that hangs costs its limit, not the run.
#
# On a machine without a GPU,
#   DEVICE=cpu SIZE=tiny DTYPE=bf16 STREAMS="1 2" SERVING="1 2" bench/gpu_matrix.sh /tmp/x
# runs the same steps small, which is how this script is checked.
set -uo pipefail

out=${1:-${OUT:-bench-out}}
device=${DEVICE:-cuda}
size=${SIZE:-release}
dtype=${DTYPE:-bf16}
streams=${STREAMS:-1 4 16 64 128 256}  # unquoted below on purpose: one argument per size
serving=${SERVING:-1 32 128 256}
serving_codes=${SERVING_CODES:-100}
max_processes=${MAX_PROCESSES:-16}
python=${PYTHON:-python3}
read -r limit_checkpoint limit_selftest limit_batch limit_precision limit_serving \
  <<<"${LIMITS:-90 60 150 50 150}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")" || exit 1
root=$(cd .. && pwd)
export PYTHONPATH="$root/packages/xtts-core/src:$root/packages/xtts-balancer/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

failed=0
run() {  # run LIMIT_S NAME COMMAND...: the command's output to NAME.md and to the terminal
  local limit=$1 name=$2
  shift 2
  echo "== $name: $*"
  timeout "$limit" "$@" 2>&1 | tee "$out/$name.md"
  local status=${PIPESTATUS[0]}
  [ "$status" -eq 0 ] || { echo "== $name failed with status $status"; failed=1; }
  return "$status"
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  "$python" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())'
  "$python" -m pip check 2>&1 | head -20
} | tee "$out/machine.md"
run 30 imports "$python" -c '
import importlib.util, xtts_core.engine, xtts_core.scheduler, xtts_core.decode_graphs
import xtts_balancer.app, xtts_balancer.worker.main, hypercorn, websockets, httpx
import bench_core, bench_batch, bench_precision, gpu_selftest
print("ours: every module imports")
if importlib.util.find_spec("TTS") is not None:
    from TTS.tts.models.xtts import Xtts
    print("reference: coqui-tts imports")
else:
    print("reference: coqui-tts is not installed (its rows are skipped)")
' || exit 1
# shellcheck disable=SC2016
run "$limit_checkpoint" checkpoint "$python" -c '
import sys
from pathlib import Path
from bench_core import ensure_checkpoint
print(ensure_checkpoint(Path(sys.argv[1]), sys.argv[2])[0])
' "$root/.cache/bench/$size" "$size"
run "$limit_selftest" gpu_selftest "$python" gpu_selftest.py --size "$size" --device "$device" \
  --dtype "$dtype" --streams "${streams##* }"
run "$limit_batch" batch "$python" bench_batch.py --size "$size" --device "$device" --dtype "$dtype" \
  --streams $streams --max-processes "$max_processes" --max-sequential "$max_processes"
run "$limit_precision" precision "$python" bench_precision.py --size "$size" --device "$device"
run "$limit_serving" serving "$python" bench_balancer.py --size "$size" --device "$device" \
  --dtype "$dtype" --instances 1 --slots "${serving##* }" --sessions $serving \
  --max-new-codes "$serving_codes" --start-timeout "$((limit_serving / 2))" \
  --round-timeout "$((limit_serving / 4))"
exit "$failed"
