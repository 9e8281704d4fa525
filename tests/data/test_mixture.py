"""A mixture as the user writes it: weights, schedules and names in --train and --valid, and each mistake refused
with a sentence that names the item and the fix, before any text is read."""

from __future__ import annotations

import numpy as np
import pytest

from hfgpt.config import DataSection
from hfgpt.data.mixture import (
    Schedule,
    check_mixture,
    check_schedules,
    mixture_sources,
    schedules_key,
    validation_sets,
)
from hfgpt.errors import HfGptError


def test_weighted_items_are_sources_named_after_their_files_or_as_given():
    sources = mixture_sources("books=data/shakespeare.txt:3, code/:1,notes.v2.jsonl:0.5")
    assert [(s.name, s.path) for s in sources] == [("books", "data/shakespeare.txt"), ("code", "code/"),
                                                   ("notes.v2", "notes.v2.jsonl")]
    assert [s.schedule.points for s in sources] == [((0, 3.0),), ((0, 1.0),), ((0, 0.5),)]


def test_an_empty_path_is_the_default_corpus_as_an_empty_train_is():
    assert [(s.name, s.path) for s in mixture_sources("books.txt:3,:1")] == [("books", "books.txt"), ("python", "")]
    first = mixture_sources("stdlib=:1,books.txt:1")[0]
    assert (first.name, first.path) == ("stdlib", "")


def test_without_weights_the_files_are_one_plain_source_as_before():
    assert mixture_sources("a.txt,b/,c.jsonl") == []
    assert mixture_sources("") == []


def test_a_schedule_is_linear_between_its_points_and_constant_beyond_them():
    [source] = mixture_sources("code/:1@0/1@0.5/4@1.0")
    schedule = source.schedule
    assert schedule.steps(1000) == ((0, 1.0), (500, 1.0), (1000, 4.0))
    assert schedule.at(np.array([0, 250, 500, 750, 1000, 5000]), 1000).tolist() == [1, 1, 1, 2.5, 4, 4]
    assert Schedule(((100, 2.0), (200, 0.0))).at(np.array([0, 150, 300]), 1000).tolist() == [2, 1, 0]
    assert not schedule.constant and schedule.describe() == "1@0 -> 1@0.5 -> 4@1.0"


def test_points_written_with_a_decimal_point_are_fractions_and_move_with_max_steps():
    sources = mixture_sources("a.txt:1@0/4@0.5,b.txt:1@0/4@500")
    assert schedules_key(tuple(s.schedule for s in sources), 1000) != \
        schedules_key(tuple(s.schedule for s in sources), 2000)
    constant = tuple(s.schedule for s in mixture_sources("a.txt:3,b.txt:1"))
    assert schedules_key(constant, 1000) == schedules_key(constant, 2000), "constant weights do not move"


@pytest.mark.parametrize(("spec", "words"), [
    ("a.txt:1,b.txt", ["not to 'b.txt'", "b.txt:1"]),
    ("a.txt:-1,b.txt:1", ["'a.txt' the weight -1", "0 or more"]),
    ("a.txt:inf,b.txt:1", ["weight inf"]),
    ("a.txt:1@0/x@0.5,b.txt:1", ["not a number", "1@0/4@0.8"]),
    ("a.txt:1@0/2,b.txt:1", ["without @"]),
    ("a.txt:1@1.5,b.txt:1", ["'1.5'", "between 0.0 and 1.0"]),
    ("x/a.txt:1,y/a.txt:2", ["two items 'a'", "NAME=PATH"]),
])
def test_a_bad_weight_is_one_sentence_naming_the_item(spec, words):
    with pytest.raises(HfGptError) as caught:
        mixture_sources(spec)
    assert all(word in str(caught.value) for word in words), str(caught.value)


def test_a_schedule_that_goes_backwards_is_refused_with_the_steps_it_falls_on():
    with pytest.raises(HfGptError, match=r"goes backwards.*steps \[500, 200\]"):
        check_schedules(mixture_sources("a.txt:1@0.5/2@200,b.txt:1"), 1000)
    with pytest.raises(HfGptError, match="repeats a point"):
        check_schedules(mixture_sources("a.txt:1@0.5/2@500,b.txt:1"), 1000)


def test_a_step_where_every_weight_is_zero_is_refused():
    check_schedules(mixture_sources("a.txt:1@0/0@0.5,b.txt:0@0/1@0.5"), 1000)  # they cross: never all zero
    with pytest.raises(HfGptError, match="weight 0 at step 500"):
        check_schedules(mixture_sources("a.txt:1@0/0@0.5,b.txt:0@0/0@0.6/1@0.7"), 1000)
    with pytest.raises(HfGptError, match="weight 0 at step 0"):
        check_schedules(mixture_sources("a.txt:0,b.txt:0"), 1000)


def test_validation_sets_are_named_and_take_no_weight():
    assert [(s.name, s.path) for s in validation_sets("held.txt, web=crawl/")] == [("held", "held.txt"),
                                                                                  ("web", "crawl/")]
    with pytest.raises(HfGptError, match="not mixed"):
        validation_sets("held.txt:2")


def test_the_validation_lines_are_the_mean_and_each_set_or_source():
    assert check_mixture(DataSection(train="books=a.txt:3,code=b.txt:1"), 100) == ["valid", "valid/books",
                                                                                 "valid/code"]
    assert check_mixture(DataSection(train="a.txt", valid="x.txt,y.txt"), 100) == ["valid", "valid/x", "valid/y"]
    assert check_mixture(DataSection(train="a.txt:1,b.txt:1", valid="held.txt"), 100) == ["valid", "valid/held"]
    assert check_mixture(DataSection(train="a.txt", valid="held.txt"), 100) == ["valid"]
    with pytest.raises(HfGptError, match="goes backwards"):
        check_mixture(DataSection(train="a.txt:1@0.5/2@0.1,b.txt:1"), 100)
