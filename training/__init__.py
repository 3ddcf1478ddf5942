"""Training, apart from the harness: the artefacts the adapters load, built on text that is in no eval set.

The harness (``svip.eval``) only measures: it runs methods on the benchmark's
questions and reports what they did. This package builds what some of those
methods load -- EAGLE heads (``adapters/eagle/heads``) and GliDe drafts
(``adapters/glide/drafts``) -- from the target's answers to composed prompts
and from pinned source text, never an eval question. Keeping the two apart
keeps that line visible: nothing in ``svip.eval`` imports this package, while
training borrows the harness's model zoo, loading path, datasets (to exclude
them, and to score a finished head or draft) and prompt templates.

- ``eagle``  -- the EAGLE-1/2 and EAGLE-3 heads (``make eagle-head``, ``make eagle-head-qwen``, ``make eagle3-head-qwen``)
- ``glide``  -- the native GliDe drafts (``make glide-draft``, ``make glide-draft-deep``, ``make glide-draft-diverse``)
- ``corpus`` -- diverse training text from files pinned with the project (both use it)
- ``cache``  -- expensive training inputs (the teacher's answers and features) kept on disk
"""
