"""The tiny Qwen3-Omni checkpoint this plugin's `testing.build_tiny_qwen3_omni` writes: it loads by path as the
published one does, its thinker trains on images and audio, its talker speaks, and it learns the synthetic tasks
only through the pathway of their medium."""

from __future__ import annotations

import json

import pytest
from omni.api import MediaContext, load_audio, load_image
from omni.testing.synthetic import write_shapes, write_tones

from tests.helpers import qwen3_omni_processor


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def omni_dir(tmp_path_factory):
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni

    return build_tiny_qwen3_omni(tmp_path_factory.mktemp("tiny-qwen3-omni"))


def test_tiny_qwen3_omni_is_small_and_loads_by_path(omni_dir):
    import transformers

    config = transformers.AutoConfig.from_pretrained(omni_dir)
    assert config.architectures == ["Qwen3OmniMoeForConditionalGeneration"]
    assert config.thinker_config.audio_config.num_mel_bins == 128
    model = transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(omni_dir)
    assert not model.has_talker
    assert 200_000 < sum(p.numel() for p in model.parameters()) < 600_000

    tokenizer = transformers.AutoTokenizer.from_pretrained(omni_dir)
    image_processor = transformers.AutoImageProcessor.from_pretrained(omni_dir)
    features = transformers.AutoFeatureExtractor.from_pretrained(omni_dir)
    assert type(image_processor).__name__ == "Qwen2VLImageProcessorPil" and image_processor.patch_size == 16
    assert type(features).__name__ == "WhisperFeatureExtractor" and features.feature_size == 128
    for name in ("image_token", "audio_token", "video_token", "vision_bos_token", "audio_bos_token"):
        assert getattr(tokenizer, name) in tokenizer.get_vocab()
    thinker = config.thinker_config
    assert thinker.image_token_id == tokenizer.convert_tokens_to_ids(tokenizer.image_token)
    assert thinker.audio_token_id == tokenizer.convert_tokens_to_ids(tokenizer.audio_token)
    assert thinker.video_token_id == tokenizer.convert_tokens_to_ids(tokenizer.video_token)


def test_auto_processor_is_the_qwen3_omni_processor(omni_dir):
    pytest.importorskip(
        "torchvision", reason="transformers' Qwen3-Omni processor needs its torchvision video processor"
    )
    import transformers

    processor = transformers.AutoProcessor.from_pretrained(omni_dir)
    assert type(processor).__name__ == "Qwen3OmniMoeProcessor"
    assert processor.feature_extractor.feature_size == 128


def test_thinker_trains_on_an_image_and_a_second_of_audio(omni_dir, tmp_path):
    import torch
    import transformers

    shapes = write_shapes(tmp_path / "shapes", train=1, held_out=0)
    tones = write_tones(tmp_path / "tones", train=1, held_out=0)
    image = load_image(rows(shapes.train)[0]["images"][0], context=MediaContext(base_dir=shapes.directory))
    audio = load_audio(rows(tones.train)[0]["audios"][0], context=MediaContext(base_dir=tones.directory))
    processor = qwen3_omni_processor(omni_dir)
    model = transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(omni_dir)
    conversation = [
        {"role": "user", "content": [{"type": "image"}, {"type": "audio"}, {"type": "text", "text": "Colour?"}]},
        {"role": "assistant", "content": "red"},
    ]
    text = processor.apply_chat_template(conversation, tokenize=False)
    batch = processor(text=text, images=[image], audio=[audio], return_tensors="pt")
    assert (
        batch["input_ids"].eq(model.config.thinker_config.image_token_id).sum() == batch["image_grid_thw"].prod() // 4
    )
    assert batch["feature_attention_mask"].sum() == 100  # one second of 10 ms mel frames

    out = model.thinker(**batch, labels=batch["input_ids"])
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for tower in (model.thinker.visual, model.thinker.audio_tower):
        grads = [p.grad for p in tower.parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_tiny_qwen3_omni_with_talker_speaks(tmp_path):
    """The talker checkpoint has the same weights every build (transformers leaves its experts as torch.empty:
    CI's merge test once saw them differ) and speaks."""
    import torch
    import transformers
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni
    from safetensors.torch import load_file

    path = build_tiny_qwen3_omni(tmp_path / "omni-talker", with_talker=True)
    torch.full((1 << 22,), float("nan"))  # freed memory holding NaN, as late in a long session
    again = load_file(str(build_tiny_qwen3_omni(tmp_path / "again", with_talker=True) / "model.safetensors"))
    first = load_file(str(path / "model.safetensors"))
    assert all(torch.isfinite(weight).all() and torch.equal(weight, again[name]) for name, weight in first.items())
    model = transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(path)
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    assert model.has_talker
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    torch.manual_seed(0)
    with torch.no_grad():
        text_ids, waveform = model.generate(
            **tokenizer(prompt, return_tensors="pt"),
            return_audio=True,
            thinker_max_new_tokens=4,
            thinker_do_sample=False,
            talker_max_new_tokens=4,
            talker_do_sample=False,
        )
    assert 0 < text_ids.shape[1] - len(tokenizer(prompt)["input_ids"]) <= 4
    assert waveform.numel() > 0 and torch.isfinite(waveform).all()


def held_out_accuracy(omni_dir, dataset, modality, epochs, lr=3e-3):
    """Train the tiny thinker to answer `dataset`'s question (cross-entropy over the answers' first
    tokens, batches of 16, AdamW at `lr`) and return its accuracy on the held-out split."""
    import torch
    import transformers

    torch.manual_seed(0)
    processor = qwen3_omni_processor(omni_dir)
    thinker = transformers.Qwen3OmniMoeForConditionalGeneration.from_pretrained(omni_dir).thinker
    answer_ids = [processor.tokenizer.encode(answer)[0] for answer in dataset.answers]
    context = MediaContext(base_dir=dataset.directory)

    def batch(split_rows):
        question = split_rows[0]["messages"][0]["content"].removeprefix(f"<{modality}>")
        user = [{"role": "user", "content": [{"type": modality}, {"type": "text", "text": question}]}]
        prompt = processor.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        if modality == "image":
            media = {"images": [load_image(r["images"][0], context=context) for r in split_rows]}
        else:
            media = {"audio": [load_audio(r["audios"][0], context=context) for r in split_rows]}
        inputs = processor(text=[prompt] * len(split_rows), return_tensors="pt", **media)
        return inputs, torch.tensor([dataset.answers.index(r["solution"]) for r in split_rows])

    train = rows(dataset.train)
    batches = [batch(train[i : i + 16]) for i in range(0, len(train), 16)]
    optimizer = torch.optim.AdamW(thinker.parameters(), lr=lr)
    for _ in range(epochs):
        for inputs, targets in batches:
            logits = thinker(**inputs).logits[:, -1, answer_ids]
            torch.nn.functional.cross_entropy(logits, targets).backward()
            optimizer.step()
            optimizer.zero_grad()
    inputs, targets = batch(rows(dataset.held_out))
    with torch.no_grad():
        predictions = thinker(**inputs).logits[:, -1, answer_ids].argmax(-1)
    return (predictions == targets).float().mean().item()


@pytest.mark.slow
@pytest.mark.parametrize("blank", [False, True], ids=["real", "blank"])
def test_tiny_thinker_learns_colours_only_through_its_image_pathway(omni_dir, tmp_path, blank):
    shapes = write_shapes(tmp_path, train=128, held_out=32, blank=blank)
    # 3e-3 stalled with two colours confused under 2 threads (CI), as the plugin's shapes test did
    accuracy = held_out_accuracy(omni_dir, shapes, "image", epochs=16, lr=2e-3)
    assert accuracy <= 0.5 if blank else accuracy >= 0.9  # four colours: chance is 0.25


@pytest.mark.slow
@pytest.mark.parametrize("blank", [False, True], ids=["real", "blank"])
def test_tiny_thinker_learns_pitch_only_through_its_audio_pathway(omni_dir, tmp_path, blank):
    tones = write_tones(tmp_path, train=64, held_out=32, blank=blank)
    accuracy = held_out_accuracy(omni_dir, tones, "audio", epochs=12)
    assert accuracy <= 0.65 if blank else accuracy >= 0.9  # two answers: chance is 0.5
