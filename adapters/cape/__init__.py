"""CaPE (GliDe with a CaPE, ICML 2024) on the vanilla engine: confidence-aware extra candidates, one tree verify.

- ``method``   -- ``cape[:bins=..,nodes=..][+<policy>]`` strings
- ``proposer`` -- ``CapeProposer``: any chain drafter's proposal plus alternatives where the draft is unsure
- ``kind``     -- the registry entry

The tree is verified by the vanilla engine (``svip.tree``, ``TargetScorer``):
greedy output stays the target's. The policy (``+svip``) stops the chain; CaPE
then expands every position of the chain that was kept.
"""
