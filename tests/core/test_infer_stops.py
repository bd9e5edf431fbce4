"""Stop strings on finished and streamed text."""

from __future__ import annotations

from omni.infer.stops import StopStringFilter, cut_at_stop


def test_cut_at_stop_uses_the_earliest_stop_string():
    assert cut_at_stop("one two. three\n\nfour", ["\n\n", "."]) == ("one two", True)
    assert cut_at_stop("no stop here", ["END", ""]) == ("no stop here", False)


def test_filter_holds_back_a_possible_stop_until_it_is_decided():
    stops = StopStringFilter(["<END>"])
    assert stops.feed("hello <E") == "hello "
    assert stops.feed("X more") == "<EX more"
    assert stops.feed(" and <EN") == " and "
    assert stops.feed("D> ignored") == ""
    assert stops.stopped
    assert stops.feed("after") == "" and stops.flush() == ""


def test_filter_releases_held_text_when_the_stream_ends():
    stops = StopStringFilter(["###"])
    pieces = ["a#", "b#", "#"]
    shown = "".join(stops.feed(p) for p in pieces) + stops.flush()
    assert shown == "a#b##"
    assert not stops.stopped


def test_streamed_pieces_add_up_to_the_cut_text():
    text = "The answer is 42.\nObservation: done"
    for size in (1, 2, 3, 7):
        stops = StopStringFilter(["Observation:"])
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        shown = "".join(stops.feed(p) for p in pieces) + stops.flush()
        assert shown == cut_at_stop(text, ["Observation:"])[0] == "The answer is 42.\n"
