#!/usr/bin/env bash
# The wheels a lent GPU machine needs for bench/gpu_matrix.sh, downloaded here, where PyPI is
# reachable: exactly those of bench/device_kit.txt (what the machine's image, listed in
# bench/device_image.txt, lacks), for CPython $KIT_PYTHON on manylinux x86-64, into $KIT_DIR
# (ignored by git). Then bench/_device_kit.py checks that every requirement of every wheel is met
# by the kit or the image and that the kit plus the working tree fit the 64 MiB that travels, and
# the one command to run on the machine is printed.
#
#   bench/device_kit.sh                      # .device-kit/, CPython 3.12 (the image's)
#   REFERENCE=0 bench/device_kit.sh          # without coqui-tts and its needs (no reference rows)
#   KIT_PYTHON=3.11 KIT_DIR=/tmp/kit311 bench/device_kit.sh   # the same kit for another Python
#
# Needs python3 with pip and `packaging`. Downloads only; installs nothing here.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
kit=${KIT_DIR:-$root/.device-kit}
version=${KIT_PYTHON:-3.12}
python=${PYTHON:-python3}
reference=${REFERENCE:-1}

# One requirement per line, comments dropped; the reference lines only when asked for.
mapfile -t wanted < <(
  if [ "$reference" = 1 ]; then cat "$root/bench/device_kit.txt"; else grep -v '# reference' "$root/bench/device_kit.txt"; fi |
    sed -e 's/#.*//' -e 's/[[:space:]]//g' | grep -v '^$'
)
rm -rf "$kit"
mkdir -p "$kit"
platforms=()
for tag in manylinux_2_39 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 \
  manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
echo "== downloading ${#wanted[@]} wheels for CPython $version into $kit"
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$version" --implementation cp "${platforms[@]}" -d "$kit" "${wanted[@]}"

echo "== checking the kit against the image"
"$python" "$root/bench/_device_kit.py" "$kit" --python "$version"

relative=${kit#"$root"/}
if [ "$relative" = "$kit" ]; then
  echo "note: $kit is outside the repository; a device run carries only paths inside it"
fi
cat <<EOF

== on the GPU machine (device run, carry ["$relative"]), from the repository root:
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $relative/*.whl && PYTHONPATH=/tmp/site bench/gpu_matrix.sh
EOF
