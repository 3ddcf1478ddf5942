# make glide-svip (default preset): the paper's Table 3 setting for the 7B target on a CUDA GPU.
# Vicuna-7B-v1.5 (upstream's cape.sh) and a trained GliDe draft for it (upstream's checkpoints are
# named glide-47m-vicuna-7b; they are not on a public hub we know of: give a local path with
# GLIDE_DRAFT=...). MT-Bench, Code, Finance, GSM, Spider from upstream's raw_data, its own prompt and
# 128-token answers, fp16, greedy; GliDe, +SVIP (h=0.3, gamma=0.15, cap 40), GliDe+CaPE, +SVIP.
# Needs third_party/glide-venv (make glide-venv: CUDA torch + flash-attn). Without CUDA it says so and stops.
GLIDE_TARGET  := lmsys/vicuna-7b-v1.5
GLIDE_DRAFT   ?= glide-47m-vicuna-7b
GLIDE_RUN_DIR := runs/glide-vicuna-7b
