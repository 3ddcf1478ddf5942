# The paper's Table 4 setting on a GPU: LLaMA-2-Chat-7B + the authors' EAGLE head, fschat's llama-2
# template, fp16, greedy, EAGLE-2's default tree, all questions (--per-category 80 = every question of each set).
#   make eagle2-svip EAGLE_PRESET=eagle2-llama2-chat-7b
EAGLE_BASE_MODEL := meta-llama/Llama-2-7b-chat-hf
EAGLE_HEAD       := yuhuili/EAGLE-llama2-chat-7B
EAGLE_RUN_DIR    := runs/eagle2-llama2-chat-7b
EAGLE_FLAGS      := --dtype fp16 --device cuda --template llama-2 --max-new-tokens 1024 --per-category 80
EAGLE_METHODS    := eagle2 eagle2+svip
