#!/usr/bin/env bash
# One device call (docs/results/cuda.md, "How it was run"): build the stand-alone CUDA targets,
# run the tests, compute-sanitizer over them, the register/SASS summary and the benchmark.
# Usage (from the source root; googletest sources in $GTEST_SOURCE_DIR, default third_party/googletest,
# on the device machine .carry/deps/googletest):
#   bench/cuda/device_run.sh [OUTDIR] [--no-sanitizer] [--quick] [--quant-only] [--profile]
# The quick loop of kernel work (docs/results/gpu8.md "Session 4"), about 40 s a call:
#   cd .carry/src-NAME && GTEST_SOURCE_DIR=$(realpath ../deps/googletest) bench/cuda/device_run.sh "$OUT" --no-sanitizer --quant-only
set -uo pipefail
OUT=${1:-/tmp/wush_cuda_out}; shift || true
SAN=1; BARGS=; PROF=0
for a in "$@"; do case $a in --no-sanitizer) SAN=0 ;; --quick|--quant-only) BARGS="$BARGS $a" ;; --profile) PROF=1 ;; esac; done
mkdir -p "$OUT"
B=/tmp/wush_cuda_build
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv | tee "$OUT/gpu.txt"
cmake -S cmake/cuda_standalone -B $B -DGTEST_SOURCE_DIR=${GTEST_SOURCE_DIR:-$PWD/third_party/googletest} \
  -DWUSH_CUDA_ARCHITECTURES=90a-real -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc > "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
cmake --build $B -j16 > "$OUT/build.log" 2>&1 || { grep -E "error|Error" "$OUT/build.log" | head -30; exit 1; }
$B/wush_cuda_tests 2>&1 | tee "$OUT/tests.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED)|FAILED|Failure|expected|Which is" | head -40
if [ $SAN = 1 ]; then
  compute-sanitizer --tool memcheck $B/wush_cuda_tests --gtest_filter='CudaQuantize.*' > "$OUT/sanitizer.log" 2>&1
  grep -E "ERROR SUMMARY|PASSED|FAILED" "$OUT/sanitizer.log" | head -5
fi
# SASS instruction mix of the fused kernels (every format x transform terms x codes).
OBJ=$(find $B -name 'fused_quantize.cu.o' | head -1)
if [ $PROF = 1 ]; then bench/cuda/profile.sh $B "$OUT"; fi
if [ $PROF = 0 ] && command -v cuobjdump > /dev/null; then
  cuobjdump -sass "$OBJ" > "$OUT/fused_quantize.sass" 2>&1
  python3 - "$OUT/fused_quantize.sass" <<'PY' | tee "$OUT/sass_mix.txt"
import re, sys, collections
fun, mix = None, collections.OrderedDict()
for line in open(sys.argv[1]):
    m = re.search(r"Function : (\S+)", line)
    if m: fun = m.group(1); mix[fun] = collections.Counter(); continue
    m = re.match(r"\s+/\*[0-9a-f]{4}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)", line)
    if m and fun: mix[fun][m.group(1)] += 1
for f, c in mix.items():
    if "quantize_kernel" in f:
        print(f[-60:], sum(c.values()), " ".join(f"{k}:{v}" for k, v in c.most_common(14)))
PY
fi
$B/w4a4_bench $BARGS 2>&1 | tee "$OUT/bench.log" | sed -n '/==== summary/,$p'
