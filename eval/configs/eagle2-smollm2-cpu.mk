# make eagle2-svip EAGLE_PRESET=eagle2-smollm2-cpu (the quick smoke run): SmolLM2-135M + the shipped EAGLE head, fp32 on this CPU.
# EAGLE's five question sets, the 2 shortest questions of each, 64 new tokens, greedy. EAGLE-2's
# default tree (60 nodes, depth 7, top-k 10) and a CPU-sized one (20 nodes, depth 4, top-k 5), each with
# and without SVIP (h=0.3; h=0.5 too on the default tree), and the cost-aware rule (depth and size from
# the measured verify curve, at most the default tree), interleaved per question.
EAGLE_BASE_MODEL := smollm2-135m
EAGLE_HEAD       := adapters/eagle/heads/smollm2-135m
EAGLE_RUN_DIR    := runs/eagle2-smollm2
EAGLE_FLAGS      := --dtype fp32 --device cpu --per-category 2 --shortest --max-new-tokens 64
EAGLE_METHODS    := eagle2 eagle2+svip eagle2+svip:h=0.5 eagle2:total=20,depth=4,top_k=5 eagle2:total=20,depth=4,top_k=5+svip \
                    eagle2+svip-adaptive
