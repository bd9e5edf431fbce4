"""ms-swift's media and text column spellings, media tags added where a row has none, and tag counts checked."""

from __future__ import annotations

import csv

import pytest
from omni.errors import DataError

from tests.core.data_helpers import load, write_jsonl

ANSWER = {"role": "assistant", "content": "red"}


@pytest.mark.parametrize("column", ["images", "image", "image_path"])
def test_image_spellings_become_the_images_column(tmp_path, column):
    row = {"query": "<image>Colour?", "response": "red", column: "a.png"}
    (loaded,) = load(str(write_jsonl(tmp_path / "a.jsonl", [row]))).train
    assert loaded["images"] == ["a.png"]
    assert column == "images" or column not in loaded
    assert loaded["messages"] == [{"role": "user", "content": "<image>Colour?"}, ANSWER]


@pytest.mark.parametrize(("audio", "video"), [("audios", "videos"), ("audio", "video"), ("audio_path", "video_path")])
def test_audio_and_video_spellings_become_their_columns(tmp_path, audio, video):
    row = {"query": "<video><video><audio>What?", "response": "red", audio: ["q.wav"], video: ["v.mp4", "w.mp4"]}
    (loaded,) = load(str(write_jsonl(tmp_path / "a.jsonl", [row]))).train
    assert loaded["audios"] == ["q.wav"] and loaded["videos"] == ["v.mp4", "w.mp4"]


def test_text_with_media_is_the_answer_to_them(tmp_path):
    """The seed's shape: `text` beside `image_path` and `audio_path` is a caption of both, learned as the answer."""
    row = {"text": "a red square and a high tone", "image_path": "s.png", "audio_path": "t.wav", "id": 7}
    (loaded,) = load(str(write_jsonl(tmp_path / "a.jsonl", [row]))).train
    assert loaded["messages"] == [
        {"role": "user", "content": "<audio><image>"},  # ms-swift's order: video, audio, image tags
        {"role": "assistant", "content": "a red square and a high tone"},
    ]
    assert loaded["images"] == ["s.png"] and loaded["audios"] == ["t.wav"] and loaded["id"] == 7
    assert "text" not in loaded and "image_path" not in loaded


def test_text_without_media_stays_a_pretraining_row_even_with_empty_media_cells(tmp_path):
    path = tmp_path / "a.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["text", "image_path"], ["Once upon a time.", ""]])
    (loaded,) = load(str(path)).train
    assert loaded["text"] == "Once upon a time." and "messages" not in loaded and not loaded["images"]


def test_query_with_text_answers_with_the_text(tmp_path):
    row = {"system": "Be brief.", "history": [["Hi", "Hello"]], "query": "Colour?", "text": "red", "image": "a.png"}
    (loaded,) = load(str(write_jsonl(tmp_path / "a.jsonl", [row]))).train
    assert [m["role"] for m in loaded["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    # Untagged media go in front of the first message after the system one, as ms-swift puts them.
    assert loaded["messages"][1]["content"] == "<image>Hi" and loaded["messages"][-1] == ANSWER


def test_tags_are_added_per_modality_only_where_none_is_given(tmp_path):
    row = {
        "messages": [{"role": "user", "content": "Which <image> is louder than <image>?"}, ANSWER],
        "images": ["a.png", "b.png"],
        "audio": ["x.wav", "y.wav"],
    }
    (loaded,) = load(str(write_jsonl(tmp_path / "a.jsonl", [row]))).train
    assert loaded["messages"][0]["content"] == "<audio><audio>Which <image> is louder than <image>?"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            {"messages": [{"role": "user", "content": "<image><image>?"}, ANSWER], "image_path": "a.png"},
            "2 <image> tag(s) in the messages but 1 file(s) in images",
        ),
        (
            {"query": "<audio>?", "response": "red", "audios": ["a.wav", "b.wav"]},
            "1 <audio> tag(s) in the messages but 2 file(s) in audios",
        ),
        ({"text": "red", "images": ["a.png"], "image": "b.png"}, "has both images and image columns"),
    ],
    ids=["too-many-tags", "too-few-tags", "two-spellings"],
)
def test_media_that_disagree_with_the_tags_are_a_row_error_naming_file_and_line(tmp_path, row, problem):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "fine", "image": "ok.png"}, row])
    with pytest.raises(DataError) as info:
        load(str(path))
    assert str(info.value).startswith(f"{path}:2: ") and problem in str(info.value)
