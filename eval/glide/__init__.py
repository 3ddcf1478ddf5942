"""GliDe/CaPE tooling that needs the harness: ``bench`` runs upstream's patched benchmark scripts (GPU) as Table 3."""
