"""bulkops.imports: reading a file as a stream, and the results file's cells."""

import io

import pytest

from bulkops.imports import FileRefused, csv_rows, jsonl_rows, neutralised


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_a_spreadsheet_would_run_starts_with_a_quote(start):
    assert neutralised(f"{start}1+1") == f"'{start}1+1"


def test_other_cells_are_written_as_they_are():
    assert [neutralised(v) for v in ["a=b", "", None, 12, "1-2"]] == ["a=b", "", "", "12", "1-2"]


def test_csv_rows_are_read_lazily_and_leave_blank_cells_out():
    columns, rows = csv_rows(io.BytesIO(b"\xef\xbb\xbftitle,priority\r\nA,\r\n\r\nB,high\r\n"))
    assert columns == ["title", "priority"]
    assert [row.cells for row in rows] == [{"title": "A"}, {"title": "B", "priority": "high"}]


def test_invalid_utf8_after_many_good_rows_refuses_the_file_naming_the_line():
    content = b"title\n" + b"fine\n" * 10_000 + b"bad \xff\n"
    _, rows = csv_rows(io.BytesIO(content))
    with pytest.raises(FileRefused, match="not valid UTF-8"):
        list(rows)


def test_json_lines_take_any_known_keys_per_line():
    _, rows = jsonl_rows(io.BytesIO(b'{"title": "A"}\n\n{"priority": null}\n'), ("title", "priority"))
    assert [row.cells for row in rows] == [{"title": "A"}, {"priority": None}]
