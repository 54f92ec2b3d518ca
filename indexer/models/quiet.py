"""Third-party warnings: kept off the user's terminal while models load and run.

torch, transformers and open_clip warn about their own deprecations and about choices we make on
purpose (QuickGELU with OpenAI weights, cache arguments); on a user's terminal that is noise, and
it breaks the progress display. Scoped, not process-wide: our own warnings and any code outside
these blocks (tests included) still see everything.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

THIRD_PARTY = r"(torch|transformers|open_clip|timm|huggingface_hub|safetensors|tokenizers)(\.|$)"


@contextlib.contextmanager
def quiet_third_party() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=THIRD_PARTY)
        yield
