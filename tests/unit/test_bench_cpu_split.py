"""bench/cpu_split.py's reading of ``perf report --sort dso``: each shared object is counted
in its category (the interpreter, cryptography, SQLite, the kernel, ...), the shares are
fractions of all samples, and the report says what everything but the interpreter costs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.helpers import REPO

# the head and rows of a real report (certgate, ACME over TLS), trimmed
REPORT = """\
# To display the perf.data header info, please use --header/--header-only options.
#
# Samples: 13K of event 'cpu-clock'
#
# Overhead  Shared Object
# ........  ............................................
#
    48.00%  libpython3.11.so.1.0
    15.00%  [kernel.kallsyms]
    12.00%  _rust.abi3.so
     8.00%  libsqlite3.so.0.8.6
     6.00%  libc.so.6
     3.00%  loop.cpython-311-x86_64-linux-gnu.so
     2.00%  libcrypto.so.3
     1.50%  _http_parser.cpython-311-x86_64-linux-gnu.so
     1.00%  _sqlite3.cpython-311-x86_64-linux-gnu.so
     1.00%  [vdso]
     0.50%  ld-linux-x86-64.so.2
     1.00%  [unknown]
     1.00%  libssl.so.3
"""


@pytest.fixture(scope="module")
def split() -> Iterator[ModuleType]:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import cpu_split

        yield cpu_split
    finally:
        sys.path.remove(str(REPO / "bench"))


def test_rows_are_read_and_comments_skipped(split: ModuleType) -> None:
    shares = split.parse_dso_report(REPORT)
    assert shares["libpython3.11.so.1.0"] == 48.0
    assert shares["[vdso]"] == 1.0
    assert len(shares) == 13
    assert split.parse_dso_report("# only a header\n#\n") == {}


def test_shared_objects_fall_into_their_categories(split: ModuleType) -> None:
    cats = split.categorise(split.parse_dso_report(REPORT))
    assert cats["interpreter"] == pytest.approx(0.48)
    assert cats["crypto"] == pytest.approx(0.15)  # _rust.abi3 + libcrypto + libssl
    assert cats["sqlite"] == pytest.approx(0.09)  # the library and the driver module
    assert cats["kernel"] == pytest.approx(0.16)  # kallsyms and vdso
    assert cats["libc"] == pytest.approx(0.065)  # libc and the loader
    assert cats["C extensions"] == pytest.approx(0.045)  # uvloop, aiohttp's parser
    assert cats["other"] == pytest.approx(0.01)
    assert sum(cats.values()) == pytest.approx(1.0)
    assert next(iter(cats)) == "interpreter"  # largest first


def test_a_go_binary_is_its_own_category(split: ModuleType) -> None:
    cats = split.categorise({"pebble": 70.0, "[kernel.kallsyms]": 30.0})
    assert cats == {"go binary": pytest.approx(0.7), "kernel": pytest.approx(0.3)}


def test_shares_are_fractions_of_whatever_was_sampled(split: ModuleType) -> None:
    # a report that does not add up to 100 % (perf rounds) is normalised
    cats = split.categorise({"libpython3.11.so.1.0": 30.0, "libc.so.6": 10.0})
    assert cats == {"interpreter": pytest.approx(0.75), "libc": pytest.approx(0.25)}
    assert split.categorise({}) == {}


def test_report_gives_milliseconds_and_the_rest(split: ModuleType) -> None:
    text = split.report({"interpreter": 0.5, "kernel": 0.3, "crypto": 0.2}, 6.0, "certgate")
    lines = text.splitlines()
    assert lines[0].startswith("certgate: 6.00 ms")
    assert "3.00 ms" in lines[1] and "interpreter" in lines[1]
    assert lines[-1].endswith("everything but the interpreter: 3.00 ms")
    # no interpreter (a Go server): no such line
    assert "everything but" not in split.report({"go binary": 1.0}, 4.0, "pebble")
