"""The kernel's ``print_hex_dump(..., DUMP_PREFIX_ADDRESS, 16, 1, buf, len, true)`` layout.

Written from the documented format, not the kernel's code: each row covers
16 bytes starting at the dumped buffer (not at a 16-byte boundary), is
prefixed by the address of its first byte and ``": "``, shows the bytes as
``%02x`` separated by single spaces, then pads with spaces to the ASCII
column (``rowsize * 2 + rowsize / groupsize + 1`` = 49 for 16 x 1) and
prints each byte as itself when it is printable ASCII (0x20..0x7e), else
``.``.  A full row therefore has two spaces between hex and text; a short
last row is padded so its text lines up with the rows above.
"""
from __future__ import annotations

ROWSIZE = 16
GROUPSIZE = 1
ASCII_COLUMN = ROWSIZE * 2 + ROWSIZE // GROUPSIZE + 1

# One table lookup per byte instead of a format call: dumps can be 4 KiB.
_HEX = [f"{b:02x}" for b in range(256)]
_TEXT = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in range(256))
_TEXT_TABLE = str.maketrans({i: c for i, c in enumerate(_TEXT)})


def hex_dump_line(row: bytes) -> str:
    """One row without its prefix: hex, padding to the ASCII column, text."""
    hexpart = " ".join(_HEX[b] for b in row)
    return hexpart.ljust(ASCII_COLUMN) + row.decode("latin-1").translate(_TEXT_TABLE)


def hex_dump(data: bytes, address: int) -> list[str]:
    """Rows of ``data`` as the kernel prints them, the first byte being at ``address``."""
    return [f"{address + i:016x}: {hex_dump_line(data[i : i + ROWSIZE])}" for i in range(0, len(data), ROWSIZE)]
