"""The query language: what a researcher types, read into words and filters."""

from __future__ import annotations

import pytest

from datasette_scisearch.search.query import MAX_QUERY_CHARS, QueryError, parse_query


def words(query):
    return [[(term.text, term.kind) for term in clause] for clause in query.clauses]


def only_number(query):
    (number_filter,) = query.numbers
    return number_filter


def test_free_words_are_clauses_that_must_all_match():
    assert words(parse_query("SrTiO3 HAADF")) == [[("SrTiO3", "word")], [("HAADF", "word")]]


def test_a_quoted_phrase_stays_one_term():
    assert words(parse_query('"grain boundary" STEM')) == [[("grain boundary", "phrase")], [("STEM", "word")]]


def test_or_between_words_makes_them_alternatives():
    assert words(parse_query("gold OR silver nanoparticles")) == [
        [("gold", "word"), ("silver", "word")],
        [("nanoparticles", "word")],
    ]


def test_a_minus_excludes_a_word_or_a_phrase():
    query = parse_query('gold -simulation -"density functional"')
    assert [t.text for t in query.excluded] == ["simulation", "density functional"]
    assert words(query) == [[("gold", "word")]]


def test_a_trailing_star_is_a_prefix():
    assert words(parse_query("haad*")) == [[("haad", "prefix")]]


def test_stopwords_are_dropped_unless_the_query_is_nothing_else():
    assert words(parse_query("the structure of SrTiO3")) == [[("structure", "word")], [("SrTiO3", "word")]]
    assert words(parse_query("to be")) == [[("to", "word")], [("be", "word")]]


def test_voltage_with_a_unit_is_converted_to_kilovolts():
    number_filter = only_number(parse_query("voltage>=200000V"))
    assert (number_filter.column, number_filter.low, number_filter.high) == ("voltage_kv", 200.0, None)


def test_voltage_filter_takes_its_unit_after_a_space():
    assert only_number(parse_query("voltage >= 200 kV")).low == 200.0


def test_kv_filter_reads_a_bare_number_in_kilovolts():
    number_filter = only_number(parse_query("kv:80"))
    assert number_filter.low == pytest.approx(79.2) and number_filter.high == pytest.approx(80.8)


def test_magnification_range_reads_mega_on_both_ends():
    number_filter = only_number(parse_query("mag:1M-20M"))
    assert (number_filter.column, number_filter.low, number_filter.high) == ("magnification", 1e6, 2e7)


def test_a_unit_written_once_applies_to_both_ends_of_a_range():
    assert (only_number(parse_query("voltage:80-300kV")).low, only_number(parse_query("voltage:80-300kV")).high) == (
        80.0,
        300.0,
    )


def test_pixel_size_in_angstrom_and_picometres_is_converted_to_nanometres():
    assert only_number(parse_query("pixel<0.5Å")).high == pytest.approx(0.05)
    assert only_number(parse_query("pixel<50pm")).high == pytest.approx(0.05)


def test_a_reversed_range_is_read_from_small_to_large_with_a_note():
    query = parse_query("mag:20M-1M")
    assert (only_number(query).low, only_number(query).high) == (1e6, 2e7)
    assert "smaller to the larger" in query.messages[0]


def test_300_kv_in_free_text_filters_files_softly_and_stays_a_phrase():
    query = parse_query("diffraction 300 kV")
    number_filter = only_number(query)
    assert number_filter.soft and number_filter.column == "voltage_kv"
    assert number_filter.low == pytest.approx(297) and number_filter.high == pytest.approx(303)
    assert "300 kV" in number_filter.phrase_alternatives
    assert words(query) == [[("diffraction", "word")]]
    assert query.semantic_text == "diffraction 300 kV"


def test_glued_kv_and_magnification_in_free_text_are_recognised():
    query = parse_query("STO 300kV 13.5Mx")
    assert sorted(f.column for f in query.numbers) == ["magnification", "voltage_kv"]


def test_an_unknown_unit_is_ignored_with_a_message_naming_it():
    query = parse_query("voltage>kg")
    assert query.numbers == []
    assert query.messages == ["unknown unit 'kg' in 'voltage>kg' was ignored (voltage takes V, kV, MV)"]


def test_contradicting_ranges_are_an_error_that_says_so():
    with pytest.raises(QueryError, match="exclude each other"):
        parse_query("voltage>=300kV voltage<100kV")


def test_a_negative_voltage_is_an_error():
    with pytest.raises(QueryError, match="cannot be negative"):
        parse_query("voltage:-5kV")


def test_type_takes_item_types_and_kinds_of_file_any_of_which_may_match():
    query = parse_query("type:papers type:image,diffraction -type:session")
    assert query.item_types == {"paper"}
    assert query.kinds == {"image", "diffraction"}
    assert query.excluded_item_types == {"session"}


def test_an_unknown_type_is_ignored_with_the_list_of_types():
    query = parse_query("type:banana")
    assert not query.item_types and not query.kinds
    assert "unknown type 'banana'" in query.messages[0] and "proposal" in query.messages[0]


def test_text_filters_keep_quoted_values_with_spaces():
    (instrument,) = parse_query('instrument:"TEAM 0.5" gold').text_filters
    assert (instrument.field, instrument.values) == ("instrument", ["TEAM 0.5"])


def test_a_negated_tag_filter_is_marked_negated():
    (tag,) = parse_query("-tag:simulation").text_filters
    assert tag.negated and tag.values == ["simulation"]


def test_a_year_is_the_whole_year():
    (date,) = parse_query("date:2021").dates
    assert (date.start, date.end) == ("2021-01-01", "2022-01-01")


def test_a_month_range_ends_after_its_last_month():
    (date,) = parse_query("date:2021-03..2021-06").dates
    assert (date.start, date.end) == ("2021-03-01", "2021-07-01")


def test_after_and_before_are_open_ranges():
    after, before = parse_query("after:2021 before:2022-06").dates
    assert (after.start, after.end) == ("2022-01-01", None)
    assert (before.start, before.end) == (None, "2022-06-01")


def test_an_impossible_date_is_ignored_with_a_message():
    query = parse_query("date:2021-13-45")
    assert query.dates == [] and "not a date" in query.messages[0]


def test_a_field_that_is_not_a_filter_is_searched_as_words_with_a_note():
    query = parse_query("title:haadf")
    assert words(query) == [[("title", "word")], [("haadf", "word")]]
    assert "'title:' is not a filter" in query.messages[0]


@pytest.mark.parametrize(
    "text",
    ['"unbalanced quote', "gold AND silver NOT copper", "NEAR(gold silver, 3)", "title:*", "a*b^c:d", "((( )))"],
)
def test_fts5_syntax_is_read_as_words_not_operators(text):
    query = parse_query(text)
    for clause in query.clauses:
        for term in clause:
            assert any(ch.isalnum() for ch in term.text)


def test_not_before_a_word_excludes_it():
    query = parse_query("gold NOT copper")
    assert [t.text for t in query.excluded] == ["copper"]


def test_emoji_and_punctuation_alone_leave_nothing_to_search():
    assert parse_query("🙂 !!! —").is_empty


def test_a_query_longer_than_the_limit_is_refused():
    with pytest.raises(QueryError, match="characters long"):
        parse_query("a" * (MAX_QUERY_CHARS + 1))


def test_a_name_with_an_extension_is_a_candidate_for_an_exact_match():
    assert "Au_np_300kV_HAADF_0012.dm4" in parse_query("Au_np_300kV_HAADF_0012.dm4").exact_candidates


def test_filters_are_plain_json():
    import json

    filters = parse_query('voltage>=200kV type:image tag:HAADF date:2021 "grain boundary" -sim').filters_json()
    assert json.loads(json.dumps(filters)) == filters
    assert filters["kinds"] == ["image"] and filters["numbers"][0]["low"] == 200.0
