"""The model library: cards (JSON Schema), search/rank, load by id with hash checks, generate,
validate, pack/add, and the explorer and reader-study pages.

`Generators` is medigan's face over it (`jaxsyn.zoo.generators`); models are found in the
package's own `jaxsyn/zoo/models/`, then `$JAXSYN_MODELS` (colon-separated), then `library=`.
"""

from __future__ import annotations

from jaxsyn.zoo.generators import GenerateFunction, Generators, ModelMatchCandidate

__all__ = ["GenerateFunction", "Generators", "ModelMatchCandidate"]
