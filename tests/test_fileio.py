"""fileio: atomic writes keep the old file on failure and leave no temporary behind; link_or_copy."""

from __future__ import annotations

import os

import pytest
import torch

from fileio import atomic_write, atomic_write_with


def test_text_bytes_and_callback(tmp_path):
    p = atomic_write(tmp_path / "sub" / "a.txt", "héllo\n")
    assert p.read_bytes() == "héllo\n".encode()
    atomic_write(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    q = atomic_write_with(tmp_path / "t.pt", lambda f: torch.save({"x": torch.arange(3)}, f))
    assert torch.equal(torch.load(q)["x"], torch.arange(3))
    assert sorted(x.name for x in tmp_path.rglob("*")) == ["a.txt", "sub", "t.pt"]
    mode = os.stat(p).st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # the permissions open() gives, not mkstemp's 0600


def test_failure_keeps_old_file_and_removes_temp(tmp_path):
    p = atomic_write(tmp_path / "a.txt", "old")

    def half(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_with(p, half)
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["a.txt"]
    with pytest.raises(ValueError, match="str or bytes"):
        atomic_write(p, 3)  # type: ignore[arg-type]
