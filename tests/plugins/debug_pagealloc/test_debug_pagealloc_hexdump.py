"""The hex dump layout, rows written out by hand (print_hex_dump, 16 bytes a row, groups of 1, ASCII)."""
from __future__ import annotations

from pageext_debug_pagealloc.hexdump import ASCII_COLUMN, hex_dump, hex_dump_line

A = 0xFFFF888001234010


def test_ascii_column_is_49_for_16_by_1() -> None:
    assert ASCII_COLUMN == 49  # 16 * 2 hex digits + 16 separators + 1


def test_full_row_has_two_spaces_before_the_text() -> None:
    row = bytes(range(0x41, 0x51))  # "ABCDEFGHIJKLMNOP"
    assert hex_dump(row, A) == [
        "ffff888001234010: 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50  ABCDEFGHIJKLMNOP"]


def test_short_row_is_padded_to_the_ascii_column() -> None:
    assert hex_dump(b"\xab", A) == ["ffff888001234010: ab" + " " * 47 + "."]
    assert len(hex_dump_line(b"\xab")) == 49 + 1


def test_unprintable_bytes_are_dots_and_space_and_tilde_are_printable() -> None:
    assert hex_dump_line(b" ~\x1f\x7f\x80\xaa\x00a") == "20 7e 1f 7f 80 aa 00 61" + " " * 26 + " ~.....a"


def test_rows_advance_by_16_from_the_first_byte() -> None:
    data = bytes(range(40))
    lines = hex_dump(data, A + 3)
    assert [ln.split(":")[0] for ln in lines] == ["ffff888001234013", "ffff888001234023", "ffff888001234033"]
    assert lines[2] == "ffff888001234033: 20 21 22 23 24 25 26 27" + " " * 26 + ' !"#$%&\''


def test_a_whole_page_is_256_rows() -> None:
    assert len(hex_dump(b"\x00" * 4096, A)) == 256
