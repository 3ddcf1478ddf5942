"""svip.eval: offline models, model loading, prompts and the command line.

- ``models``  -- the offline model zoo (PyPI wheels -> verified safetensors)
- ``loading`` -- load any zoo name, local path or HF id onto devices
- ``prompts`` -- chat templates / raw prompts -> token ids
- ``cli``     -- the ``svip`` command
"""
