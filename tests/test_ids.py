"""Ids as Label Studio sends them and as users write them."""

from __future__ import annotations

import pytest

from backend.ids import MAX_ID, integer_cell, is_id, parse_project_id, whole_number


@pytest.mark.parametrize("raw, pid", [(7, 7), ("7", 7), ("7.1700000000", 7), ({"id": 3}, 3), ("007", 7),
                                      (str(MAX_ID), MAX_ID)])
def test_project_ids_as_label_studio_sends_them(raw, pid):
    assert parse_project_id(raw) == pid


@pytest.mark.parametrize("raw", [0, -1, True, "", "x", "²", "1" * 5000, MAX_ID + 1, str(MAX_ID + 1), None, 1.0])
def test_bad_project_ids_are_refused(raw):
    with pytest.raises(ValueError):
        parse_project_id(raw)


def test_is_id_takes_positive_64_bit_integers_only():
    assert is_id(1) and is_id(MAX_ID)
    assert not any(is_id(v) for v in (0, -5, MAX_ID + 1, True, "3", 3.0))


def test_whole_numbers_refuse_long_and_non_ascii_digits():
    assert whole_number(" 0042 ", 3) == 42
    assert whole_number("1234", 3) is None
    assert whole_number("²", 3) is None
    assert whole_number("9" * 5000, 19) is None


def test_integer_cells_keep_exact_values():
    assert integer_cell(12) == 12
    assert integer_cell(12.0) == 12
    assert integer_cell(2.0**60) is None  # a float this large may be a neighbour of the id written
    assert integer_cell("0017") == 17
    assert integer_cell("img_1") is None
    assert integer_cell(True) is None
