"""Tiny tokenizers with a model family's real special tokens and chat template, trained at call time.

`build_tokenizer("qwen3")` trains a byte-level BPE of about `vocab_size` entries on a small built-in
corpus (a second or so), adds the family's special tokens and chat template, and returns a
`transformers.PreTrainedTokenizerFast` that `save_pretrained` writes like a hub tokenizer. The trained
files are cached per process, so later calls only reload them. A family omni does not list is described
with a `FamilyTokens` (its published special tokens and chat template) and passed instead of a name.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from omni.testing import chat_templates

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

Family = Literal["llama", "smollm2", "qwen3", "qwen2.5", "qwen3-omni", "generic"]

_QWEN_SPECIAL = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)  # fmt: skip
# Qwen marks these as added but not special: they survive `decode(skip_special_tokens=True)`.
_QWEN_PLAIN = (
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
)  # fmt: skip
_QWEN3_OMNI_AUDIO = (
    "<|audio_start|>",
    "<|audio_end|>",
    "<tts_pad>",
    "<tts_text_bos>",
    "<tts_text_eod>",
    "<|audio_pad|>",
)


@dataclass(frozen=True)
class FamilyTokens:
    """The special tokens and chat template a family's published tokenizer carries.

    Model plugins describe their families' tokenizers with one and pass it to `build_tokenizer` (or to
    `build_tiny(..., tokenizer=)`): special tokens get ids in the published order, the chat template is the
    published one, so `apply_chat_template` renders and tokenizes as the real tokenizer does."""

    leading_special: tuple[str, ...]  # special tokens that take the first ids (SmolLM2's layout)
    trailing_special: tuple[str, ...]  # special tokens appended after the BPE vocabulary (Llama, Qwen)
    plain_added: tuple[str, ...]
    bos: str | None
    eos: str
    pad: str | None
    unk: str | None
    chat_template: str
    prepend_bos: bool  # whether encoding text adds `bos` in front (Llama 3 does)
    # Tokens the tokenizer names, as (name, token): Gemma 3's ("image_token", "<image_soft_token>"); its
    # processor reads them (tokenizer.image_token) and build_tiny gives the config's image_token_id that token.
    named_special: tuple[tuple[str, str], ...] = ()


def _qwen(chat_template: str, extra_special: tuple[str, ...] = ()) -> FamilyTokens:
    """Qwen's layout: special tokens after the vocabulary, no BOS, `<|im_end|>` ends a turn."""
    return FamilyTokens(
        leading_special=(),
        trailing_special=_QWEN_SPECIAL + extra_special,
        plain_added=_QWEN_PLAIN,
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        unk=None,
        chat_template=chat_template,
        prepend_bos=False,
    )


_FAMILIES: dict[str, FamilyTokens] = {
    "llama": FamilyTokens(
        leading_special=(),
        trailing_special=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|reserved_special_token_0|>",
            "<|reserved_special_token_1|>",
            "<|finetune_right_pad_id|>",
            "<|reserved_special_token_2|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eom_id|>",
            "<|eot_id|>",
            "<|python_tag|>",
        ),
        plain_added=(),
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad="<|finetune_right_pad_id|>",
        unk=None,
        chat_template=chat_templates.LLAMA3,
        prepend_bos=True,
    ),
    "smollm2": FamilyTokens(
        leading_special=(
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<repo_name>",
            "<reponame>",
            "<file_sep>",
            "<filename>",
            "<gh_stars>",
            "<issue_start>",
            "<issue_comment>",
            "<issue_closed>",
            "<jupyter_start>",
            "<jupyter_text>",
            "<jupyter_code>",
            "<jupyter_output>",
            "<jupyter_script>",
            "<empty_output>",
        ),
        trailing_special=(),
        plain_added=(),
        bos="<|im_start|>",
        eos="<|im_end|>",
        pad="<|im_end|>",
        unk="<|endoftext|>",
        chat_template=chat_templates.SMOLLM2,
        prepend_bos=False,
    ),
    # Any other family: SentencePiece-style BOS/EOS/UNK first, ChatML turn markers, plain ChatML.
    "generic": FamilyTokens(
        leading_special=("<unk>", "<s>", "</s>"),
        trailing_special=("<|im_start|>", "<|im_end|>", "<pad>"),
        plain_added=(),
        bos="<s>",
        eos="<|im_end|>",
        pad="<pad>",
        unk="<unk>",
        chat_template=chat_templates.CHATML,
        prepend_bos=False,
    ),
    "qwen3": _qwen(chat_templates.QWEN3),
    "qwen2.5": _qwen(chat_templates.QWEN2_5),
    "qwen3-omni": _qwen(chat_templates.QWEN3_OMNI, extra_special=_QWEN3_OMNI_AUDIO),
}

FAMILIES: tuple[str, ...] = tuple(_FAMILIES)

# Enough varied text for BPE to learn common English pieces, digits, code-ish and CJK bytes.
_CORPUS = """\
You are a helpful assistant. Who are you? I am an AI assistant, here to help you with questions.
The quick brown fox jumps over the lazy dog. A journey of a thousand miles begins with a single step.
What is the capital of France? The capital of France is Paris. What color is the shape? The shape is red.
Is the tone high or low? The tone is high. Please answer with yes or no. Yes. No. Maybe.
Cutting Knowledge Date: December 2023. Today Date: 26 Jul 2024. system user assistant tool ipython
def add(a, b):\n    return a + b\nprint(add(1, 2))\n{"name": "get_weather", "arguments": {"city": "Paris"}}
0 1 2 3 4 5 6 7 8 9 10 11 12 42 100 256 1024 2024 3.14 -7 +8 = * / % ( ) [ ] { } < > : ; , . ! ?
Translate to English: 你好，世界。我是一个人工智能助手。谢谢！Good morning, good night, thank you.
Let me think step by step. First, we add the numbers. Then we check the answer. The answer is 12.
Hello! How can I help you today? Tell me a story about a cat, a dog, and a small blue bird.
red green blue yellow black white circle square triangle image audio video picture sound music
"""


def _corpus_lines() -> list[str]:
    """The corpus plus generated number and word lines, so the vocabulary fills up to about 1000."""
    words = _CORPUS.split()
    generated = [" ".join(words[i::7]) for i in range(7)] + [" ".join(map(str, range(n, 1000, 37))) for n in range(37)]
    return _CORPUS.splitlines() * 4 + generated


def _train(family: str | FamilyTokens, vocab_size: int, directory: Path) -> None:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    spec = family if isinstance(family, FamilyTokens) else _FAMILIES[family]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(spec.leading_special),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus_lines(), trainer)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in spec.trailing_special])
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec.plain_added])
    if spec.prepend_bos and spec.bos is not None:
        bos_id = tokenizer.token_to_id(spec.bos)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A", pair=f"{spec.bos} $A {spec.bos} $B", special_tokens=[(spec.bos, bos_id)]
        )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=spec.bos,
        eos_token=spec.eos,
        pad_token=spec.pad,
        unk_token=spec.unk,
        model_max_length=4096,
        extra_special_tokens=dict(spec.named_special),
    )
    wrapped.chat_template = spec.chat_template
    wrapped.save_pretrained(directory)


def _remove_if_owner(directory: Path, owner_pid: int) -> None:
    # Forked children inherit atexit handlers; only the process that trained the files removes them.
    if os.getpid() == owner_pid:
        shutil.rmtree(directory, ignore_errors=True)


@functools.cache
def family_tokens(family: Family) -> FamilyTokens:
    """The `FamilyTokens` of one of omni's tokenizer families, to derive a published variant from (a
    vision-language checkpoint's: more special tokens, its processor's chat template)."""
    return _FAMILIES[family]


def tokenizer_dir(family: Family | FamilyTokens, vocab_size: int = 1000) -> Path:
    """A directory (per process, temporary) holding the tiny tokenizer files of `family`."""
    if not isinstance(family, FamilyTokens) and family not in _FAMILIES:
        raise ValueError(f"unknown tokenizer family {family!r}; choose one of {', '.join(FAMILIES)}")
    name = family if isinstance(family, str) else "custom"
    directory = Path(tempfile.mkdtemp(prefix=f"omni-tokenizer-{name}-"))
    atexit.register(_remove_if_owner, directory, os.getpid())
    _train(family, vocab_size, directory)
    return directory


def build_tokenizer(
    family: Family | FamilyTokens, vocab_size: int = 1000, **load_options: Any
) -> PreTrainedTokenizerFast:
    """A fresh tiny tokenizer of `family` (a name omni lists, or a `FamilyTokens`) with its real special tokens
    and chat template.

    `vocab_size` bounds the trained BPE vocabulary; the special and added tokens come on top, so size a
    model's embedding with `len(tokenizer)`. `load_options` go to `from_pretrained` (e.g. a multimodal
    family's ``extra_special_tokens``, which `save_pretrained` then records as the published tokenizer does).
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(tokenizer_dir(family, vocab_size), **load_options)
