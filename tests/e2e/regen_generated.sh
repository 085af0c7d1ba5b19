#!/bin/sh
# generated/ is reproducible: regenerating the committed diracnet18 bundle (code only, AVX2 target)
# gives byte-identical files.
. "$(dirname "$0")/lib.sh"
"$FOLDC" build diracnet18 --weights random --no-weights --target x86-64-linux-avx-avx2-f16c-fma-sse41 \
  -o "$SCRATCH/diracnet18" 2> /dev/null
diff -rq "$FOLDC_ROOT/generated/diracnet18" "$SCRATCH/diracnet18" || fail "generated/diracnet18 differs from a fresh build"
echo "ok: generated/diracnet18 regenerates with no diff"
