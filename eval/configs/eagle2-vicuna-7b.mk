# The paper's Table 4 setting on a GPU: Vicuna-7B-v1.3 + the authors' EAGLE head, fschat's vicuna_v1.1
# template, fp16, greedy, EAGLE-2's default tree, all questions (--per-category 80 = every question of each set). Needs network for the hub ids (or local
# paths in their place) and a CUDA build of torch in third_party/eagle-venv.
#   make eagle2-svip EAGLE_PRESET=eagle2-vicuna-7b
EAGLE_BASE_MODEL := lmsys/vicuna-7b-v1.3
EAGLE_HEAD       := yuhuili/EAGLE-Vicuna-7B-v1.3
EAGLE_RUN_DIR    := runs/eagle2-vicuna-7b
EAGLE_FLAGS      := --dtype fp16 --device cuda --template vicuna_v1.1 --max-new-tokens 1024 --per-category 80
EAGLE_METHODS    := eagle2 eagle2+svip
