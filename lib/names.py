"""File names as the kit writes them: any name the file system accepts, in CSV files and records that are UTF-8.

A name that is valid UTF-8 is written byte for byte (CSV quoting aside). A name that is not (``caf\\xe9.jpg`` from a
Latin-1 archive, a CP949 name from Windows; Python lists it with surrogate escapes) is written *escaped*: its raw
bytes with every backslash doubled and every byte that is not part of valid UTF-8 as ``\\xNN``. ``unescape`` gives
the bytes back; ``predictions.csv`` says which rows are escaped (``name_escaped``), since a valid name may hold the
same text.
"""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"\\\\|\\x([0-9a-f]{2})")
_CSV_SPECIAL = (",", '"', "\r", "\n")


def is_utf8(name: str) -> bool:
    """True when ``name`` (as ``os.listdir`` gives it) is valid UTF-8 text, so a UTF-8 file can hold it exactly."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape(name: str) -> str:
    """``name`` unchanged when it is valid UTF-8; otherwise its bytes escaped (see the module's docstring)."""
    if is_utf8(name):
        return name
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no file name decodes to (text from elsewhere): shown as \\udNNN
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def unescape(text: str) -> bytes:
    """The raw bytes of a name that ``escape`` escaped."""
    out, pos = bytearray(), 0
    for m in _ESCAPE.finditer(text):
        out += text[pos:m.start()].encode("utf-8") + (bytes([int(m.group(1), 16)]) if m.group(1) else b"\\")
        pos = m.end()
    return bytes(out + text[pos:].encode("utf-8"))


def csv_field(text: str) -> str:
    """``text`` as one CSV field (RFC 4180): quoted, with quotes doubled, when it holds a comma, quote, CR or LF."""
    if any(c in text for c in _CSV_SPECIAL):
        return '"' + text.replace('"', '""') + '"'
    return text
