"""The families table: published chat templates encode exactly, checkpoints resolve and load, part maps and LoRA
targets name real modules of transformers' classes."""

from __future__ import annotations

import pytest
from omni.api import IGNORE_INDEX, OmniError, TemplateOptions
from omni.models.resolve import match_config, match_hub_id, resolve_model
from omni.plugins import load_plugins
from omni.template import get_template
from omni.testing import build_tiny
from omni_plugin_families.table import FAMILIES
from omni_plugin_families.testing import END_OF_TURN, FAMILIES_WITH_PUBLISHED_TEMPLATES, published_tokenizer

SPECS = {spec.name: spec for spec in FAMILIES}
# Gemma 2's and Mixtral's templates refuse a system message; the others fold or write it.
NO_SYSTEM = {"gemma2", "mixtral"}


@pytest.fixture(scope="module")
def registry():
    return load_plugins({}).registry


def conversation(family: str) -> list[dict[str, str]]:
    system = [] if family in NO_SYSTEM else [{"role": "system", "content": "Answer briefly."}]
    return [
        *system,
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "It is 4."},
        {"role": "user", "content": "And 3+3?"},
        {"role": "assistant", "content": "6, of course."},
    ]


# Families whose `default` template reproduces the published one exactly (the GLM families have their own: below).
PUBLISHED = (
    "gemma2", "gemma3-text", "mistral", "mixtral", "phi3", "phimoe", "deepseek-r1-distill", "deepseek-v2", "deepseek-v3",
)  # fmt: skip
# Where the generation prompt stops short of an answer's first character (DeepSeek-V2's "Assistant:" before " It").
ANSWER_OPENING = {"deepseek-v2": " "}
GLM = ("glm4", "glm")


def test_every_shipped_published_template_is_checked():
    assert {*PUBLISHED, *GLM, "glm4-moe"} == set(FAMILIES_WITH_PUBLISHED_TEMPLATES)


@pytest.mark.parametrize("family", PUBLISHED)
def test_the_family_template_gives_the_published_templates_ids_and_trains_the_answers(family, registry):
    tokenizer = published_tokenizer(family)
    messages = conversation(family)
    template = get_template(None, tokenizer, model_spec=SPECS[family], registry=registry)
    encoded = template.encode({"messages": messages})
    assert encoded.input_ids == tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"]
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    opening = ANSWER_OPENING.get(family, "")
    assert tokenizer.decode(trained) == "".join(opening + answer + END_OF_TURN[family] for answer in answers)
    prompt = template.encode_prompt({"messages": messages})
    expected = tokenizer.apply_chat_template(messages[:-1], tokenize=True, add_generation_prompt=True)
    assert prompt.input_ids == expected["input_ids"]


def check_glm_answers_train_with_the_next_user_token(family: str, registry):
    """A GLM family's conversation encodes to the published template's ids plus a final <|user|>, and trains each
    answer with the <|user|> after it. Returns (tokenizer, messages, template, encoded)."""
    tokenizer = published_tokenizer(family)
    messages = conversation(family)
    template = get_template(None, tokenizer, model_spec=SPECS[family], registry=registry)
    encoded = template.encode({"messages": messages})
    user = tokenizer.convert_tokens_to_ids("<|user|>")
    assert encoded.input_ids == [*tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"], user]
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    assert tokenizer.decode(trained) == "".join(f"\n{answer}<|user|>" for answer in answers)
    return tokenizer, messages, template, encoded


@pytest.mark.parametrize("family", GLM)
def test_glm4_trains_each_answer_with_the_user_token_that_follows_it(family, registry):
    """GLM-4-0414's and GLM-4-9B chat's published templates end an answer with no token of their own (the models
    stop on <|user|>): the glm4 template keeps their ids, and trains each answer with the <|user|> after it, appended
    after the last one too; its generation prompt is theirs."""
    tokenizer, messages, template, _ = check_glm_answers_train_with_the_next_user_token(family, registry)
    prompt = template.encode_prompt({"messages": messages})
    expected = tokenizer.apply_chat_template(messages[:-1], tokenize=True, add_generation_prompt=True)
    assert prompt.input_ids == expected["input_ids"]
    assert "<|user|>" in template.stop_words
    # GLM-4-0414's template moves a later system message to the front, GLM-4-9B's keeps it in place: refused.
    late_system = [*messages[:3], {"role": "system", "content": "Now be verbose."}, *messages[3:]]
    with pytest.raises(OmniError, match=r"messages\[3\]: the glm4 template takes a system message only first"):
        template.encode({"messages": late_system})


def test_glm4_moe_trains_the_answers_and_a_stop_token_not_the_thinking_scaffold(registry):
    """GLM-4.5/4.6's published template ends an answer with no token of its own and opens it with an empty
    <think></think>: the glm4-moe template keeps the published ids, trains each answer with the <|user|> that
    follows it (appended after the last one) and leaves the scaffold in the prompt, where generation puts it too."""
    tokenizer, messages, template, encoded = check_glm_answers_train_with_the_next_user_token("glm4-moe", registry)
    user = tokenizer.convert_tokens_to_ids("<|user|>")
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert "<think></think>" in tokenizer.decode(encoded.input_ids) and "think" not in tokenizer.decode(trained)
    # The prompt is what the published template writes before an answer: the turn opened with the scaffold.
    prompt = template.encode_prompt({"messages": messages})
    opened_turn = [*messages[:-1], {"role": "assistant", "content": ""}]
    assert prompt.input_ids == tokenizer.apply_chat_template(opened_turn, tokenize=True)["input_ids"]
    assert "<|user|>" in template.stop_words
    # A final answer with its reasoning: the published template writes it, and it trains with the answer.
    thought = [*messages[:-1], {"role": "assistant", "content": "<think>Add them.</think>6, of course."}]
    encoded = template.encode({"messages": thought})
    assert encoded.input_ids == [*tokenizer.apply_chat_template(thought, tokenize=True)["input_ids"], user]
    trained = [t for t, label in zip(encoded.input_ids, encoded.labels, strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(trained).endswith("<|user|>\n<think>Add them.</think>\n6, of course.<|user|>")
    # --enable-thinking false: the published template's /nothink on every question and its own closed scaffold.
    quiet = get_template(None, tokenizer, TemplateOptions(enable_thinking=False), model_spec=SPECS["glm4-moe"])
    expected = tokenizer.apply_chat_template(
        messages[:-1], tokenize=True, add_generation_prompt=True, enable_thinking=False
    )
    assert quiet.encode_prompt({"messages": messages}).input_ids == expected["input_ids"]


@pytest.mark.parametrize("spec", FAMILIES, ids=lambda spec: spec.name)
def test_hub_ids_and_architectures_resolve_to_the_family(spec, registry):
    for pattern in spec.hub_ids:
        assert match_hub_id(pattern.replace("*", "7B-Instruct"), registry).spec.name == spec.name, pattern
    for architecture in spec.architectures:
        assert match_config({"architectures": [architecture]}, registry).spec.name == spec.name


TEXT_MODEL_TYPES = {
    "gemma2": "gemma2", "gemma3-text": "gemma3_text", "mistral": "mistral", "mixtral": "mixtral", "phi3": "phi3",
    "phimoe": "phimoe", "deepseek-v2": "deepseek_v2", "deepseek-v3": "deepseek_v3", "glm4": "glm4", "glm": "glm",
    "glm4-moe": "glm4_moe",
}  # fmt: skip


@pytest.mark.parametrize("family", TEXT_MODEL_TYPES)
def test_a_tiny_text_checkpoint_loads_through_the_family_and_its_lora_targets_exist(
    family, registry, tmp_path, one_thread
):
    import torch
    from omni.api import LoadOptions, ModelOptions

    path = build_tiny(TEXT_MODEL_TYPES[family], tmp_path / family)
    resolved = resolve_model(str(path), registry)
    assert resolved.spec.name == family
    assert resolved.spec.template == {"glm4-moe": "glm4-moe", "glm4": "glm4", "glm": "glm4"}.get(family, "default")
    model, _ = resolved.spec.load()(str(path), model_options=ModelOptions(), load_options=LoadOptions())
    linear = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    # Latent attention has either a low-rank query (q_a/q_b) or a plain one (q_proj), as the config says.
    assert set(resolved.spec.lora_targets) - linear <= {"q_proj", "q_a_proj", "q_b_proj"}
    assert set(resolved.spec.lora_targets) & linear


VISION_LANGUAGE_CLASSES = {
    "gemma3": ("gemma3", "Gemma3ForConditionalGeneration"),
    "mistral3": ("mistral3", "Mistral3ForConditionalGeneration"),
    "llava-onevision": ("llava_onevision", "LlavaOnevisionForConditionalGeneration"),
    "internvl": ("internvl", "InternVLForConditionalGeneration"),
    "idefics3": ("smolvlm", "SmolVLMForConditionalGeneration"),
    "mllama": ("mllama", "MllamaForConditionalGeneration"),
    "qwen3-vl": ("qwen3_vl", "Qwen3VLForConditionalGeneration"),
}


@pytest.mark.parametrize("family", VISION_LANGUAGE_CLASSES)
def test_every_weight_of_a_vision_language_family_is_in_one_named_part(family, registry, tmp_path, one_thread):
    """--freeze-vit, --freeze-aligner and --freeze-llm reach every weight: the part map covers the whole model."""
    import transformers

    model_type, architecture = VISION_LANGUAGE_CLASSES[family]
    path = build_tiny(model_type, tmp_path / family, architectures=[architecture])
    spec = resolve_model(str(path), registry).spec
    assert spec.name == family and spec.template == "multimodal"
    model = getattr(transformers, architecture).from_pretrained(path)
    parts: dict[str | None, list[str]] = {}
    for name, _ in model.named_parameters():
        parts.setdefault(spec.parts.part_of(name), []).append(name)
    assert None not in parts, parts.get(None)
    assert {"llm", "vision", "aligner"} <= set(parts)


def test_a_family_whose_processor_needs_torchvision_fails_in_one_line(tmp_path, capsys):
    """Mistral 3's PixtralProcessor requires torchvision, which cannot install beside omni's CPU torch: training
    one says so in one line, not with an ImportError traceback."""
    from omni.cli.main import main

    path = build_tiny("mistral3", tmp_path / "mistral3", architectures=["Mistral3ForConditionalGeneration"])
    data = tmp_path / "rows.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}\n')
    assert main(["sft", "--model", str(path), "--dataset", str(data), "--output-dir", str(tmp_path / "run")]) != 0
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if "omni: error:" in line]
    assert len(errors) == 1 and "PixtralProcessor requires the Torchvision library" in errors[0], stderr
    assert "Traceback" not in stderr
