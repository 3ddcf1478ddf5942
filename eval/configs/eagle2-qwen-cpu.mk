# make eagle2-svip (default preset): Qwen2.5-Coder-1.5B-Instruct (the zoo's benchmark target) + the shipped EAGLE head
# trained for it here (make eagle-head-qwen: one decoder layer with a 1024-wide MLP, drafting from the 32k tokens the
# target emits most). Precision by CPU (QWEN_CPU_PRECISION in the Makefile): bf16 where it has bf16 dot products,
# else fp32 with oneDNN kernels (svip.kernels: MKL repacks the weights per call on some CPUs, which makes any
# verification of more than one token cost 2-3 steps).
# EAGLE's five question sets, the 2 shortest questions of each, 64 new tokens, greedy, interleaved per question:
# EAGLE-2's GPU tree (60 nodes, depth 7, top-k 10) and a CPU-sized one (16/3/15), each with and without SVIP, the
# cost-aware rule (depth and size from the verify curve measured at the start of the run), and the full vocabulary
# as an ablation of the reduced one. The CPU tree: verifying 16 tokens costs one target step on a CPU with bf16
# matrix units (verify(16)/step 0.98-1.05 measured, 1.1 at 32, 1.4 at 33+), a level of drafting 0.05 of a step, and
# SVIP at h=0.3 stops this head's trees after the root's children nearly always; so 16 nodes, all of them
# reachable in that first level (top-k 15), is the widest tree that costs no more than a plain step (README).
EAGLE_BASE_MODEL := qwen2.5-coder-1.5b
EAGLE_HEAD       := adapters/eagle/heads/qwen2.5-coder-1.5b
EAGLE_RUN_DIR    := runs/eagle2-qwen
EAGLE_FLAGS      := $(QWEN_CPU_PRECISION) --device cpu --per-category 2 --shortest --max-new-tokens 64
EAGLE_METHODS    := eagle2 eagle2+svip eagle2:total=16,depth=3,top_k=15 eagle2:total=16,depth=3,top_k=15+svip \
                    eagle2+svip-adaptive eagle2:vocab=full+svip
