"""The sentence-embedding interface every embedder backend implements.

Contract:
- `embed(texts)` returns a float32 array of shape `[len(texts), dim]` whose rows are unit length
  (L2-normalised), so inner product is cosine similarity; row i belongs to texts[i]. An empty
  sequence gives shape `[0, dim]`. Text longer than the model reads is truncated, never refused.
  Backends batch internally; callers pass as many texts as they like.
- `embed_one(text)` is `embed([text])[0]`: shape `[dim]`.
- Failures raise `ModelUnavailable` (the model or tokenizer file is missing or fails its sha256,
  the runtime is not installed, the model does not load: retryable elsewhere, not here) or
  `ModelError` (the model loaded but a call failed). Library exceptions never escape.
- `model_id` and `dim` are known without loading the model; vectors from different `model_id`s
  are not comparable, so an index records the id it was built with.
- `check_health` never raises; it reports.
- Nothing loads before first use (so a process can fork first), and implementations are safe to
  call from several threads of one process.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from appliance.llm.base import Health

#: float32 rows, one per text.
Vectors = npt.NDArray[np.float32]


class Embedder(abc.ABC):
    """Turns text into unit vectors. See the module docstring for the contract."""

    #: The model and how it reads text (manifest id and input length); vectors of different
    #: ids live in different spaces.
    model_id: str
    #: Length of every vector.
    dim: int

    @abc.abstractmethod
    def embed(self, texts: Sequence[str]) -> Vectors:
        """Unit vectors for `texts`, shape [len(texts), dim], float32."""

    def embed_one(self, text: str) -> Vectors:
        """The unit vector for one text, shape [dim]."""
        vector: Vectors = self.embed([text])[0]
        return vector

    @abc.abstractmethod
    def check_health(self) -> Health:
        """Whether the embedder answers now (embeds a probe sentence). Never raises."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the model; the next call loads it again."""
