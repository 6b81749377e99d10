#!/usr/bin/env bash
# Nsight Compute over three fused-quantizer launches of `w4a4_bench --quick --quant-only`
# (53 launches per case: identity = 0, wush = 106, mxint4 wush = 265), plus the SASS of the
# MXFP4 transform kernel. Usage: bench/cuda/profile.sh BUILD_DIR OUTDIR
B=$1; OUT=$2
M="gpu__time_duration.sum,sm__cycles_elapsed.avg.per_second,smsp__issue_active.avg.pct_of_peak_sustained_active"
M="$M,sm__inst_executed.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__inst_executed_pipe_fma.sum"
M="$M,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,smsp__warps_active.avg.per_cycle_active"
M="$M,regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio"
for skip in 0 106 265; do
  ncu --clock-control none -k regex:team_quantize_kernel -s $skip -c 1 --metrics "$M" \
    $B/w4a4_bench --quick --quant-only 2>&1 | grep -vE "^\s*$|==PROF==|^\| |^fused|^D2D|^device|^wush"
done | tee "$OUT/ncu.txt" | grep -E "team_quantize_kernel|duration|per_second|issue_active|inst_executed|dram__|bank|warps_active| [0-9.]+$" \
  | awk '$NF+0 >= 0.05 || !/stalled/' | cut -c1-150
OBJ=$(find $B -name 'fused_quantize.cu.o' | head -1)
FN=$(cuobjdump -sass "$OBJ" | grep -o 'Function : \S*QFormatE0ELb1E\S*' | head -1 | cut -d' ' -f3)
cuobjdump -sass -fun "$FN" "$OBJ" > "$OUT/mxfp4_wush.sass" 2>&1
grep -cE "^\s+/\*[0-9a-f]+\*/" "$OUT/mxfp4_wush.sass"; grep -nE "LDL|STL" "$OUT/mxfp4_wush.sass" | head -20
