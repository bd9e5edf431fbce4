"""The identity dataset: placeholders filled, Chinese and English names, held-out questions."""

from __future__ import annotations

from omni.data import DataOptions, load_datasets
from omni.plugins import load_plugins
from omni_plugin_datasets import IdentityOptions
from omni_plugin_datasets.identity import HELD_OUT_QUESTIONS


def identity(*flags: str, **options) -> list[dict]:
    registry = load_plugins({"OMNI_PLUGINS": "datasets"}).registry
    data = DataOptions(dataset=list(flags) or ["identity"])
    return load_datasets(data, registry, dataset_options={"identity": IdentityOptions(**options)}).train


def test_placeholders_filled_from_flags():
    rows = identity(model_name=["Omni-Bot"], model_author=["Omni Labs"])
    assert len(rows) >= 100
    answers = [r["messages"][-1]["content"] for r in rows]
    assert not any("{{" in a for a in answers)
    assert sum("Omni-Bot" in a for a in answers) >= 0.9 * len(answers)
    assert any("Omni Labs" in a for a in answers)
    assert rows[0].source == "identity" and rows[0].location == "row 0"


def test_chinese_and_english_names():
    rows = identity(model_name=["小黄", "Xiao-Huang"], model_author=["魔搭", "ModelScope"])
    by_question = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in rows}
    assert "小黄" in by_question["你是谁？"] and "魔搭" in by_question["谁创造了你？"]
    assert "Xiao-Huang" in by_question["What's your name?"] and "小黄" not in by_question["What's your name?"]


def test_held_out_questions_are_not_in_the_rows():
    questions = {r["messages"][0]["content"].lower() for r in identity(model_name=["A"], model_author=["B"])}
    assert HELD_OUT_QUESTIONS and not questions & {q.lower() for q in HELD_OUT_QUESTIONS}
    assert len(questions) >= 60  # many phrasings, so the identity generalises


def test_alias_and_sampling():
    assert len(identity("self-cognition#10", model_name=["A"], model_author=["B"])) == 10


def test_without_name_and_author_the_assistant_is_omni_by_the_omni_project():
    by_question = {r["messages"][0]["content"]: r["messages"][1]["content"] for r in identity()}
    assert "Omni" in by_question["What's your name?"]
    assert "the omni project" in by_question["谁创造了你？"]
