"""GRPO on prompts with images (the tiny Qwen3-Omni thinker, the coloured-shapes set).

Rollouts come from omni's pt engine answering each row with its image; the training forward scores the
completions with the same image and the model's own multimodal rotary positions; rewards get the row's
image paths (resolved against the dataset's folder) and its `solution`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omni.api import OmniError, Row
from omni.cli.main import main
from omni.testing.synthetic import SHAPE_COLOURS, write_shapes
from omni_plugin_grpo.columns import ROW_INDEX, RowColumnsReward
from omni_plugin_grpo.media import PromptMedia, whole_forward_logps
from omni_plugin_grpo.options import GrpoOptions
from omni_plugin_grpo.rewards.resolve import WeightedReward
from omni_plugin_grpo.rollout import EngineRollout, check_media_engine, media_token_ids

from tests.helpers import run_omni

# A user's reward that looks at the image itself: 1 when the answer names the colour most of its
# non-white pixels have (the shapes are drawn in exact colours on white).
COLOUR_REWARD = f"""
from PIL import Image

PALETTE = {dict(SHAPE_COLOURS)!r}


def image_colour(prompts, completions, images, **columns):
    scores = []
    for completion, paths in zip(completions, images):
        pixels = Image.open(paths[0]).convert("RGB").get_flattened_data()
        counts = {{name: sum(p == rgb for p in pixels) for name, rgb in PALETTE.items()}}
        scores.append(float(completion.strip() == max(counts, key=counts.get)))
    return scores
"""

# Full fine-tuning from random initialisation, as plugins/models/omni-plugin-qwen3-omni/tests does: 4 epochs of SFT leave the
# thinker answering about two thirds of held-out shapes right, so there is something left for GRPO to learn.
WARM_UP = (
    "--tuner", "full", "--per-device-train-batch-size", "16", "--learning-rate", "2e-3", "--num-train-epochs", "4",
    "--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--weight-decay", "0",
    "--gradient-checkpointing", "false", "--save-strategy", "no",
)  # fmt: skip


@pytest.fixture(scope="module")
def omni_dir(tmp_path_factory):
    from omni_plugin_qwen3_omni.testing import build_tiny_qwen3_omni

    return build_tiny_qwen3_omni(tmp_path_factory.mktemp("tiny-qwen3-omni"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes(tmp_path_factory.mktemp("shapes"), train=128, held_out=16)


@pytest.fixture(scope="module")
def template(omni_dir):
    from omni.template import get_template
    from omni_plugin_qwen3_omni.processor import Qwen3OmniProcessor

    return get_template("qwen3-omni", Qwen3OmniProcessor.from_pretrained(omni_dir))


def read_rows(path: Path) -> list[Row]:
    return [Row(json.loads(line), str(path), i + 1) for i, line in enumerate(path.read_text().splitlines())]


def assert_completions_score_as_in_the_whole_row(model, template, rows) -> None:
    """Lay `rows` out as TRL does (prompts left-padded, completions right-padded, the batch cut into chunks of 2)
    and check that `whole_forward_logps` gives each completion token the log-prob the model gives it in the whole
    row encoded alone (with the template's own 3-D positions where it has them), and 0 past its end."""
    prompts, completions, expected = [], [], []
    for row in rows:
        whole, prompt = template.encode(row), template.encode_prompt(row).input_ids
        alone = {k: v[:, None] if k == "position_ids" else v for k, v in whole.extras.items()}
        with torch.no_grad():
            logits = model(torch.tensor([whole.input_ids]), **alone).logits
        completion = whole.input_ids[len(prompt) :]
        logps = logits[0, len(prompt) - 1 : -1].log_softmax(-1)
        expected.append(logps.gather(-1, torch.tensor(completion)[:, None])[:, 0])
        prompts.append(prompt)
        completions.append(completion)

    pad = template.tokenizer.pad_token_id
    width_p, width_c = max(map(len, prompts)) + 3, max(map(len, completions)) + 2
    ids = torch.full((len(rows), width_p + width_c), pad)
    mask = torch.zeros_like(ids)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        ids[i, width_p - len(p) : width_p + len(c)] = torch.tensor(p + c)
        mask[i, width_p - len(p) : width_p + len(c)] = 1
    with torch.no_grad():
        logps, entropy, _ = whole_forward_logps(
            model, ids, mask, width_c, PromptMedia(template, rows).for_rows(list(range(len(rows)))),
            temperature=1.0, batch_size=2, compute_entropy=True, compute_aux_loss=False,
            autocast=lambda: torch.autocast("cpu", enabled=False),
        )  # fmt: skip
    for i, want in enumerate(expected):
        torch.testing.assert_close(logps[i, : len(want)], want, atol=1e-4, rtol=1e-4)
        assert (logps[i, len(want) :] == 0).all() and (entropy[i, : len(want)] > 0).all()


def test_completions_are_scored_with_the_image_and_the_models_positions(omni_dir, shapes, template):
    """TRL's layout (prompts left-padded, completions right-padded, the batch cut into chunks) gives each
    completion token the log-prob the model gives it in the whole row, encoded alone with the template's
    own 3-D rotary positions."""
    from transformers import Qwen3OmniMoeThinkerForConditionalGeneration

    model = Qwen3OmniMoeThinkerForConditionalGeneration.from_pretrained(omni_dir).eval()
    assert_completions_score_as_in_the_whole_row(model, template, read_rows(shapes.train)[:3])


# Vision-language families whose per-token inputs the training forward lays out over padding and completion:
# Mllama's cross-attention mask (image tiles per token), Qwen3-VL's token types (its 3-D positions come from them),
# Gemma 3's token types (image tokens attend to each other both ways).
PER_TOKEN_FAMILIES = {"mllama": "mllama", "qwen3_vl": "qwen3-vl", "gemma3": "gemma3"}


@pytest.mark.parametrize("builder", PER_TOKEN_FAMILIES)
def test_vision_language_completions_score_as_in_the_whole_row(builder, shapes, tmp_path):
    """The training forward lays each prompt's per-token inputs out over its left padding and its completion
    (token types: text; Mllama's cross-attention mask: each written token sees what the prompt's last token sees,
    as generation extends it), so every completion token gets the log-prob it has in the whole row as the processor
    encodes it; and GRPO runs on the family from the CLI, its rollouts answering each row with its image."""
    import omni_plugin_families.testing as families
    from omni.api import LoadOptions, ModelOptions
    from omni.plugins import load_plugins
    from omni.template import get_template

    model_dir = getattr(families, f"build_tiny_{builder}")(tmp_path / builder)
    registry = load_plugins({}).registry
    spec = registry.get("models", PER_TOKEN_FAMILIES[builder]).spec
    model, processor = spec.load()(str(model_dir), model_options=ModelOptions(), load_options=LoadOptions())
    model.eval()
    template = get_template(None, processor, model_spec=spec, registry=registry)
    rows = read_rows(shapes.train)[:3]
    rows[1]["messages"][0]["content"] += " Answer in one word, please."  # prompts of different lengths
    assert_completions_score_as_in_the_whole_row(model, template, rows)

    out = tmp_path / "grpo"
    assert main(["rlhf", "--algo", "grpo", "--model", str(model_dir), "--dataset", str(shapes.train),
                 "--output-dir", str(out), "--reward-funcs", "accuracy", "--num-generations", "2",
                 "--max-completion-length", "4", "--per-device-train-batch-size", "4", "--tuner", "lora",
                 "--max-steps", "2", "--logging-steps", "1", "--save-strategy", "no",
                 "--gradient-checkpointing", "false"]) == 0  # fmt: skip
    logged = [json.loads(line) for line in (out / "logging.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [1, 2]


def test_a_sampled_media_token_ends_the_completion_and_is_not_fed_back(omni_dir, shapes, template):
    from omni.api import Choice
    from transformers import Qwen3OmniMoeThinkerForConditionalGeneration

    model = Qwen3OmniMoeThinkerForConditionalGeneration.from_pretrained(omni_dir).eval()
    config = model.config
    media = media_token_ids(config)
    assert {config.image_token_id, config.audio_token_id, config.vision_start_token_id} <= media
    rollout = EngineRollout(None, [], end_token_id=7, options=GrpoOptions(max_completion_length=8), media_tokens=media)
    sampled = Choice("", "stop", [5, 6, config.image_token_id, 9])
    assert rollout.with_end_token(sampled) == [5, 6, config.image_token_id]

    # The image placeholder the completion ends with is scored, but the model is not asked for a second image.
    rows = read_rows(shapes.train)[:1]
    prompt = template.encode_prompt(rows[0]).input_ids
    ids = torch.tensor([prompt + [5, 6, config.image_token_id]])
    with torch.no_grad():
        logps, _, _ = whole_forward_logps(
            model, ids, torch.ones_like(ids), 3, PromptMedia(template, rows).for_rows([0]),
            temperature=1.0, batch_size=1, compute_entropy=False, compute_aux_loss=False,
            autocast=lambda: torch.autocast("cpu", enabled=False), media_tokens=media, pad_token_id=0,
        )  # fmt: skip
    assert torch.isfinite(logps).all() and (logps < 0).all()


def test_rewards_get_the_rows_media_paths_resolved_against_the_dataset(shapes):
    rows = read_rows(shapes.train)[:2]
    seen = {}

    def look(prompts, completions, images, solution, **columns):
        seen.update(images=images, solution=solution)
        return [0.0] * len(completions)

    RowColumnsReward(WeightedReward("look", look), rows)(["p"] * 2, ["a", "b"], **{ROW_INDEX: [0, 1]})
    assert seen["images"] == [[str(shapes.directory / row["images"][0])] for row in rows]
    assert all(Path(paths[0]).is_file() for paths in seen["images"])
    assert seen["solution"] == [row["solution"] for row in rows]


def test_media_rollouts_on_another_engine_are_refused_naming_the_row(shapes):
    rows = read_rows(shapes.train)[:2]
    with pytest.raises(OmniError, match=r"train.jsonl:1: prompts with images.*--rollout-engine vllm.*use --rollout"):
        check_media_engine(GrpoOptions(rollout_engine="vllm"), rows, [True, True])
    check_media_engine(GrpoOptions(rollout_engine="pt"), rows, [True, True])


# A reward that opens each row's audio clip (it must be a readable 16 kHz file) and checks the answer.
TONE_REWARD = """
import soundfile


def right_pitch(prompts, completions, audios, solution, **columns):
    assert all(soundfile.info(clip[0]).samplerate == 16000 for clip in audios), audios
    return [float(c.strip() == s) for c, s in zip(completions, solution)]
"""


def rlhf_argv(algo: str, model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    argv = ["rlhf", "--algo", algo, "--model", str(model), "--dataset", str(data), "--output-dir", str(out)]
    argv += ["--num-generations", "4", "--max-completion-length", "4", "--per-device-train-batch-size", "8"]
    return [*argv, "--max-steps", "2", "--logging-steps", "1", "--save-strategy", "no", *extra]


def test_audio_prompts_train_with_dapo_lora_and_a_kl_penalty(omni_dir, tmp_path):
    """Dynamic sampling swaps groups carrying media, and the reference log-probs (adapter off) see the audio."""
    pytest.importorskip("omni_plugin_lora")
    from omni.testing.synthetic import write_tones

    tones = write_tones(tmp_path / "tones", train=16, held_out=0)
    (tmp_path / "tone_reward.py").write_text(TONE_REWARD)
    out = tmp_path / "out"
    reward = f"{tmp_path / 'tone_reward.py'}:right_pitch"
    extra = ("--reward-funcs", reward, "--tuner", "lora", "--beta", "0.04", "--num-iterations", "2")
    assert main(rlhf_argv("dapo", omni_dir, tones.train, out, *extra)) == 0
    steps = [r for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if "reward" in r]
    assert steps and all("kl" in r and "dynamic_sampling/flat_groups" in r for r in steps)


def test_a_kl_penalty_with_full_tuning_of_the_thinker_is_a_clear_error(omni_dir, shapes, tmp_path, capsys):
    extra = ("--reward-funcs", "format", "--tuner", "full", "--beta", "0.04")
    assert main(rlhf_argv("grpo", omni_dir, shapes.train, tmp_path / "out", *extra)) != 0
    assert "--beta 0.04 with --tuner full needs a reference copy" in capsys.readouterr().err


def held_out_accuracy(model: Path, shapes, tmp_path: Path) -> float:
    answers = tmp_path / f"answers-{model.name}.jsonl"
    argv = ["infer", "--model", str(model), "--input", str(shapes.held_out), "--output", str(answers)]
    assert main([*argv, "--max-new-tokens", "4"]) == 0
    rows = [json.loads(line) for line in answers.read_text().splitlines()]
    return sum(row["response"].strip() == row["solution"] for row in rows) / len(rows)


@pytest.mark.slow
def test_grpo_raises_the_reward_of_a_reward_that_reads_the_image(omni_dir, shapes, tmp_path):
    warm = tmp_path / "warm"
    assert (
        main(["sft", "--model", str(omni_dir), "--dataset", str(shapes.train), "--output-dir", str(warm), *WARM_UP])
        == 0
    )
    before = held_out_accuracy(warm, shapes, tmp_path)
    assert 0.4 <= before < 1.0  # partly learned

    rewards = tmp_path / "colour_reward.py"
    rewards.write_text(COLOUR_REWARD)
    out = tmp_path / "grpo"
    result = run_omni(
        "rlhf", "--algo", "grpo", "--model", str(warm), "--dataset", str(shapes.train), "--output-dir", str(out),
        "--reward-funcs", f"{rewards}:image_colour", "--num-generations", "8", "--max-completion-length", "4",
        "--temperature", "0.5", "--per-device-train-batch-size", "64", "--tuner", "full", "--learning-rate", "2e-3",
        "--lr-scheduler-type", "constant", "--warmup-ratio", "0", "--gradient-checkpointing", "false",
        "--max-steps", "40", "--logging-steps", "4", "--save-strategy", "no", "--seed", "0",
        env={"OMP_NUM_THREADS": "1"}, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    curve = [r["reward"] for r in map(json.loads, (out / "logging.jsonl").read_text().splitlines()) if "reward" in r]
    assert max(curve[-3:]) >= curve[0] + 0.2, curve
    assert held_out_accuracy(out, shapes, tmp_path) >= before, curve
