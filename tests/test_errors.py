"""How errors are quoted inside hfgpt's one-paragraph messages."""

from __future__ import annotations

import errno
import os

from hfgpt.errors import error_summary, os_error_text


def test_an_error_is_summed_up_by_its_type_and_first_line():
    assert error_summary(ValueError("bad header\nmore detail")) == "ValueError: bad header"
    assert error_summary(ValueError("x" * 500), limit=10) == "ValueError: " + "x" * 10
    assert error_summary(KeyError()) == "KeyError"  # an empty message is not an error of its own


def test_a_failed_write_names_its_file_or_else_the_folder_being_written():
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/runs/x/optimizer.bin")
    assert os_error_text(full, "/runs/x/.tmp") == "No space left on device (/runs/x/optimizer.bin)"
    assert os_error_text(OSError(errno.EACCES, os.strerror(errno.EACCES)), "/runs/x") == \
        "Permission denied (/runs/x)"
