"""mmoe.data.reading: CSV dialects, encodings, compression, quotes, missing markers."""
from __future__ import annotations

import bz2
import gzip
import io

import numpy as np
import pandas as pd
import pytest

from mmoe.config import DataConfig, TaskSpec
from mmoe.data import MISSING_MARKERS, DataError, clean_frame, read_csv

TASKS3 = (TaskSpec("click"), TaskSpec("score", "regression"), TaskSpec("kind", "multiclass"))


def cfg(*tasks, **kw) -> DataConfig:
    return DataConfig(tasks=tasks or TASKS3, **kw)

@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_read_csv_sniffs_delimiter(sep):
    text = f'name{sep}x{sep}y\n"a{sep}b"{sep}1{sep}2.5\nc{sep}3{sep}4\n'
    df = read_csv(text.encode())
    assert list(df.columns) == ["name", "x", "y"]
    assert df["name"].tolist() == [f"a{sep}b", "c"]
    assert df["x"].dtype.kind == "i" and df["y"].dtype.kind == "f"
    assert df.attrs["delimiter"] == sep


@pytest.mark.parametrize("raw,encoding", [
    ("\ufeffcity,n\ncafé,1\nZürich,2\n".encode("utf-8"), "utf-8"),
    ("city,n\ncafé,1\nZürich,2\n".encode("utf-8"), "utf-8"),
    ("city,n\ncafé,1\nZürich,2\n".encode("cp1252"), "cp1252"),
    ("city,n\ncafé,1\nZürich,2\n".encode("utf-16"), "utf-16"),
])
def test_read_csv_encodings(raw, encoding):
    df = read_csv(raw)
    assert list(df.columns) == ["city", "n"]  # no BOM glued to the first name
    assert df["city"].tolist() == ["café", "Zürich"]
    assert df.attrs["encoding"] == encoding


def test_read_csv_compressed_by_magic_not_name(tmp_path):
    text = b"a,b\n1,x\n2,y\n"
    p = tmp_path / "plain_name.csv"  # gzip content, misleading name
    p.write_bytes(gzip.compress(text))
    assert read_csv(p)["a"].tolist() == [1, 2]
    q = tmp_path / "data.csv.gz"
    q.write_bytes(gzip.compress(text))
    assert read_csv(str(q))["b"].tolist() == ["x", "y"]
    assert read_csv(bz2.compress(text))["b"].tolist() == ["x", "y"]


def test_read_csv_sources_path_bytes_filelike(tmp_path):
    text = b"a,b\n1,x\n2,y\n"
    p = tmp_path / "d.csv"
    p.write_bytes(text)
    for src in (p, str(p), text, io.BytesIO(text), io.StringIO(text.decode()), text.decode()):
        assert read_csv(src).shape == (2, 2)


def test_read_csv_strips_spaces_and_reads_quotes():
    raw = b' a , b ,c\n 1 , " x, y " , "he said ""hi"""\n2,  z  ,"multi\nline"\n'
    df = read_csv(raw)
    assert list(df.columns) == ["a", "b", "c"]
    assert df["a"].tolist() == [1, 2] and df["a"].dtype.kind == "i"
    assert df["b"].tolist() == ["x, y", "z"]
    assert df["c"].tolist() == ['he said "hi"', "multi\nline"]


@pytest.mark.parametrize("marker", ["", "NA", "NaN", "?", "null", "N/A", "None", "NULL", "nan", " ? ", "na"])
def test_missing_markers_become_nan(marker):
    df = read_csv(f"x,y\n1,a\n{marker},b\n3,{marker}\n".encode())
    assert df["x"].isna().tolist() == [False, True, False]
    assert df["x"].dtype.kind == "f"
    assert df["y"].isna().tolist() == [False, False, True]


def test_read_csv_line_endings_blank_lines_and_pandas_index():
    assert read_csv(b"a,b\r\n1,2\r\n3,4\r\n")["b"].tolist() == [2, 4]
    assert read_csv(b"a,b\r1,2\r3,4\r")["b"].tolist() == [2, 4]  # classic Mac
    df = read_csv(b"a,b\n1,2\n\n   \n3,4\n,\n")
    assert df["a"].tolist() == [1, 3]  # blank and all-empty rows dropped
    df = read_csv(b",a,b\n0,1,x\n1,2,y\n2,3,z\n")  # DataFrame.to_csv() with its index
    assert list(df.columns) == ["a", "b"]


def test_read_csv_decimal_comma_with_semicolons():
    df = read_csv("a;b\n1,5;x\n2,25;y\n".encode())
    assert df["a"].tolist() == [1.5, 2.25]


def test_read_csv_reads_a_wide_file_exactly():
    """20,000 x 21: every float round-trips and stray spaces are stripped (speed is in bench/)."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(20000, 20)), columns=[f"c{i}" for i in range(20)])
    df["s"] = rng.choice([" a", "b ", " c "], size=len(df))
    raw = df.to_csv(index=False).encode()
    back = read_csv(raw)
    assert back.shape == df.shape and set(back["s"]) == {"a", "b", "c"}
    np.testing.assert_allclose(back[[f"c{i}" for i in range(20)]].to_numpy(float),
                               df[[f"c{i}" for i in range(20)]].to_numpy(), rtol=1e-15)


def test_clean_frame_is_idempotent(tiny_frame):
    once = clean_frame(tiny_frame)
    pd.testing.assert_frame_equal(once, clean_frame(once))


def test_missing_markers_constant():
    assert {"", "NA", "NaN", "?", "null", "N/A", "None"} <= MISSING_MARKERS


def test_the_reader_says_what_it_did(tmp_path):
    """A European spreadsheet export: semicolons, decimal commas, empty trailing rows, blank lines, gzip."""
    import gzip as _gzip

    text = "a;b;c\n1,5;x;3\n2,25;y;4\n;;\n;;\n3,0;z;5\n\n\n"
    path = tmp_path / "eu.csv.gz"
    path.write_bytes(_gzip.compress(text.encode("latin-1")))
    df = read_csv(path, min_rows=1)
    r = df.attrs["read_report"]
    assert (r["delimiter"], r["compression"], r["header_columns"], r["rows"]) == (";", "gzip", 3, 3)
    assert r["decimal_comma_columns"] == ["a"] and r["empty_rows_dropped"] == 2 and r["blank_lines_skipped"] == 2
    assert list(df["a"]) == [1.5, 2.25, 3.0]
    plain = read_csv(b"a,b\n1.5,x\n2.5,y\n", min_rows=1).attrs["read_report"]
    assert plain["decimal_comma_columns"] == [] and plain["empty_rows_dropped"] == 0 and plain["compression"] is None


@pytest.mark.parametrize("text,blank", [
    (b"a,b\n1,2\n\n3,4\n", 1), (b"a,b\r\n1,2\r\n\r\n\r\n3,4\r\n", 2), (b"a,b\n\n\n\n1,2", 3),
    (b"a,b\n1,2\n\n", 1), (b"a,b\n1,2", 0), (b"a,b\n1,2\n", 0),
    (b"\n\na,b\n1,2\n", 2),                      # blank lines above the header
    (b"a,b\n1,2\n\n   \n3,4\n,\n", 2),          # a line of spaces is skipped too; ',' is an empty row
    (b'a,b\n"x\ny",2\n\n3,4\n', 1),            # with quotes: lines with nothing on them
])
def test_blank_lines_are_counted_as_the_parser_skips_them(text, blank):
    """The read report's count of lines the parser skipped because nothing was on them."""
    assert read_csv(text, min_rows=1).attrs["read_report"]["blank_lines_skipped"] == blank


@pytest.mark.parametrize("text,line,got", [
    (b"a,b,c\n1,2,3\n4,5\n7,8,9\n", 3, 2),                    # a short row: the parser would fill it
    (b"a,b,c\n1,2,3\n4,5,6,7\n7,8,9\n", 3, 4),                # a long row: the parser refuses it
    (b"a,b,c\n1,2,3\n4,5,6,\n", 3, 4),                        # a trailing delimiter is a field too
    (b"a,b,c\n1,2\n4,5,6,7\n", 2, 2),                         # both kinds: the first ragged line is named
    (b'a,b,c\n"x, y",2,3\n"z"\n', 3, 1),                      # quoted fields
])
def test_a_ragged_row_is_refused_naming_its_line(text, line, got):
    with pytest.raises(DataError, match=rf"line {line} has {got} fields but the header has 3"):
        read_csv(text)


def test_rows_with_an_empty_last_value_are_not_ragged():
    df = read_csv(b"a,b,c\n1,2,\n4,5,6\n" + b"7,8,9\n" * 10)
    assert df["c"].isna().sum() == 1 and len(df) == 12
