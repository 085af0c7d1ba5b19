#!/bin/sh
# The GPU check, for a machine with a GPU and its driver (CI here has none: gpu_cuda and
# gpu_opencl test what can be tested without one). For each model: build one bundle with CPU and
# GPU kernels (seeded random weights with random BatchNorm statistics), run its GPU context and its
# CPU context on the example program's fixed input, check that they agree within 1e-4 of the
# output's largest magnitude, and print their latencies side by side (min and median of --runs
# runs after two warm-up runs; CPU on every core).
#
#   tests/gpu_check.sh [--target T] [--runs N] [MODEL...]
#
# T: host,cuda (default; capability 70's PTX, which newer GPUs JIT), host,cuda_capability_86, or
# host,opencl (any OpenCL GPU; on pocl it checks the path on the CPU, slowly). MODEL: zoo names or
# FILE.lua:CONFIG; default the seed models of ../shared/models/README.md that foldc has. Exits 1
# if any model fails to build, run or agree.
set -eu
FOLDC_ROOT=$(cd "$(dirname "$0")/.." && pwd)
export FOLDC_ROOT
target=host,cuda
runs=10
while [ $# -gt 0 ]; do
  case $1 in
  --target) target=$2; shift 2 ;;
  --runs) runs=$2; shift 2 ;;
  --help | -h) sed -n '2,14p' "$0"; exit 0 ;;
  -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  *) break ;;
  esac
done
[ $# -gt 0 ] || set -- resnet18 resnet50 diracnet18 diracnet34 diracnet18_train diracnet34_train repvgg_a0 \
  repvgg_b1g2 dbb_resnet18 acb_resnet18 repmlp_res50_light_224 pf_resnet50_max pf_resnet50_hybrid pf_vit_s_max \
  pf_pit_s_max pit_ti pit_xs pit_s pit_b pit_ti_distilled
work=$(mktemp -d "${TMPDIR:-/tmp}/foldc-gpu-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
# "min X ms, median Y ms" of the example program's --runs line
latency() { sed -n 's/.*: min \([0-9.]*\) ms, median \([0-9.]*\) ms.*/\1 \2/p' "$1"; }

failed=0
printf '%-28s %-22s %-22s %s\n' model "GPU min (median) ms" "CPU min (median) ms" "GPU vs CPU"
for m in "$@"; do
  b="$work/$(echo "$m" | tr -c 'A-Za-z0-9_\n' _)"
  if ! "$FOLDC_ROOT/bin/foldc" build "$m" --weights random --target "$target" -o "$b" > "$work/log" 2>&1 \
    || ! make -s -C "$b" > "$work/log" 2>&1; then
    printf '%-28s build failed: %s\n' "$m" "$(tail -n 1 "$work/log")"
    failed=1
    continue
  fi
  exe=$(ls "$b"/*_main)
  w=$(ls "$b"/*.weights)
  if ! "$exe" --weights "$w" --device gpu --runs "$runs" --output "$work/gpu.npy" > "$work/gpu" 2>&1 \
    || ! "$exe" --weights "$w" --device cpu --threads 0 --runs "$runs" --output "$work/cpu.npy" > "$work/cpu" 2>&1; then
    printf '%-28s run failed: %s\n' "$m" "$(tail -n 1 "$work/gpu" "$work/cpu" | grep -v '^==' | tr '\n' ' ')"
    failed=1
    continue
  fi
  diff=$(luajit "$FOLDC_ROOT/tests/fixtures/check_output.lua" "$work/gpu.npy" "$work/cpu.npy" 1e-4) || failed=1
  g=$(latency "$work/gpu")
  c=$(latency "$work/cpu")
  printf '%-28s %-22s %-22s %s\n' "${m##*:}" "${g% *} (${g#* })" "${c% *} (${c#* })" "$diff"
done
exit $failed
