"""llama.cpp: SVIP's entropy stop and the cost-aware rule inside llama.cpp's own drafters.

The C++ side is ``patches/llamacpp-svip.patch`` against the pinned source
(``third_party/llama.cpp.pin``, built by ``make llamacpp-setup``); this
package drives the patched ``llama-server`` from the harness.
"""
