"""PHP parse_str semantics of the emulator's query decoding (reference §1.3)."""

from __future__ import annotations

import pytest

from bitrix24_emulator.phpquery import MAX_INPUT_VARS, parse_str


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "filter[%3EID]=5&select[]=ID&select[]=TITLE&order[ID]=ASC&start=-1",
            {"filter": {">ID": "5"}, "select": ["ID", "TITLE"], "order": {"ID": "ASC"}, "start": "-1"},
        ),
        ("select[0]=ID&select[1]=TITLE", {"select": ["ID", "TITLE"]}),
        (
            "fields[PHONE][0][VALUE]=112233&fields[PHONE][0][VALUE_TYPE]=WORK&fields[TITLE]=My%20company",
            {"fields": {"PHONE": [{"VALUE": "112233", "VALUE_TYPE": "WORK"}], "TITLE": "My company"}},
        ),
        ("a[1]=x&a[0]=y", {"a": {"1": "x", "0": "y"}}),  # not 0..n-1 in order: an object, as PHP json_encode
        ("a[5]=x&a[]=y", {"a": {"5": "x", "6": "y"}}),  # [] appends at max int key + 1
        ("a[05]=x", {"a": {"05": "x"}}),  # only canonical integers are integer keys
        ("q=a+b%2Bc&empty=&bare", {"q": "a b+c", "empty": "", "bare": ""}),
        ("a=1&a=2", {"a": "2"}),  # later wins
        ("a=1&a[x]=2", {"a": {"x": "2"}}),  # a scalar is replaced by an array nesting under it
        ("a[x]=2&a=1", {"a": "1"}),
        ("my.key=1&my key=2", {"my_key": "2"}),  # PHP mangles dots and spaces in the top-level name
        ("a[b=1", {"a_b": "1"}),  # an unclosed first bracket becomes part of the name
        ("a[x]junk[y]=1", {"a": {"x": "1"}}),  # text after a closing bracket ends the path
        ("a[x][]=1&a[x][]=2", {"a": {"x": ["1", "2"]}}),
        ("=1&&x=%E2%82%AC", {"x": "€"}),
        (
            "filter[%3E%3DDATE_MODIFY]=2024-01-01T00%3A00%3A00%2B03%3A00",
            {"filter": {">=DATE_MODIFY": "2024-01-01T00:00:00+03:00"}},
        ),
        ("", {}),
        ("0=a&1=b", {"0": "a", "1": "b"}),  # the top level is always a dict
    ],
)
def test_parse_str_matches_php(query: str, expected: dict) -> None:
    assert parse_str(query) == expected


def test_parse_str_reads_only_the_first_thousand_variables_as_php_does() -> None:
    """PHP's default `max_input_vars`: a filter of 1,200 ids in one query keeps 1,000 pairs and loses the rest,
    the parameters after it included."""
    query = "&".join(f"filter[@ID][]={i}" for i in range(1200)) + "&start=-1"
    assert MAX_INPUT_VARS == 1000
    assert parse_str(query) == {"filter": {"@ID": [str(i) for i in range(1000)]}}
    assert parse_str("&&" + "&".join(f"a[]={i}" for i in range(1000))) == {"a": [str(i) for i in range(1000)]}
