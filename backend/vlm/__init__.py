"""Vision-language models behind one interface (:class:`Describer`).

``TransformersDescriber`` runs a local model (LLaVA-1.5-7B by default);
``OpenAIDescriber`` calls an OpenAI-compatible endpoint (vLLM, SGLang, ...).
Importing this package imports neither torch nor transformers.
"""

from .base import Describer, DescriberError
from .openai_vlm import OpenAIDescriber
from .prompts import (
    DEFAULT_DESCRIBE_PROMPT,
    DEFAULT_DIRECT_PROMPT,
    DEFAULT_KEYWORD_PROMPT,
    DEFAULT_OBJECT_DIRECT_PROMPT,
    DEFAULT_OBJECT_PROMPT,
    render_keyword_prompt,
)
from .transformers_vlm import TransformersDescriber, get_transformers_describer

__all__ = [
    "DEFAULT_DESCRIBE_PROMPT",
    "DEFAULT_DIRECT_PROMPT",
    "DEFAULT_KEYWORD_PROMPT",
    "DEFAULT_OBJECT_DIRECT_PROMPT",
    "DEFAULT_OBJECT_PROMPT",
    "Describer",
    "DescriberError",
    "OpenAIDescriber",
    "TransformersDescriber",
    "get_transformers_describer",
    "render_keyword_prompt",
]
