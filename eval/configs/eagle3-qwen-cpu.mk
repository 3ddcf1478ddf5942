# make eagle2-svip EAGLE_PRESET=eagle3-qwen-cpu: the eagle2-qwen-cpu run with an EAGLE-3 head for the same target
# (make eagle3-head-qwen, trained into the cache the first time: three target layers in, its own 32k draft vocabulary
# out, training-time test). The eagle2* method strings drive EAGLE-3's tree for a head in EAGLE-3's format; SVIP's
# entropy there is over the head's own draft vocabulary. Same questions, precision and trees as eagle2-qwen-cpu.
EAGLE_BASE_MODEL := qwen2.5-coder-1.5b
EAGLE_HEAD       := $(EAGLE3_HEAD_QWEN)
EAGLE_HEAD_DEPS  := $(EAGLE3_HEAD_QWEN)/model.safetensors
EAGLE_RUN_DIR    := runs/eagle3-qwen
EAGLE_FLAGS      := $(QWEN_CPU_PRECISION) --device cpu --per-category 2 --shortest --max-new-tokens 64
EAGLE_METHODS    := eagle2 eagle2+svip eagle2:total=16,depth=3,top_k=15 eagle2:total=16,depth=3,top_k=15+svip \
                    eagle2+svip-adaptive
