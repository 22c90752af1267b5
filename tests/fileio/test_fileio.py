"""fileio: atomic writes keep the old file on failure and leave no temporary behind; link_or_copy."""

from __future__ import annotations

import errno
import os

import pytest
import torch

from fileio import atomic_write, atomic_write_with, link_or_copy


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


@pytest.mark.parametrize("link", [True, False])
def test_link_or_copy_places_and_replaces(tmp_path, link):
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc")
    dst = tmp_path / "sub" / "b.bin"
    dst.parent.mkdir()
    dst.write_bytes(b"old")
    assert link_or_copy(src, dst, link=link) == dst and dst.read_bytes() == b"abc"
    assert os.path.samefile(src, dst) is link  # a hard link shares the inode; a copy does not
    assert sorted(p.name for p in dst.parent.iterdir()) == ["b.bin"]  # no temporary left
    assert link_or_copy(src, src) == src and src.read_bytes() == b"abc"  # onto itself: nothing to do


def test_link_or_copy_falls_back_to_a_copy_and_names_a_missing_source(tmp_path, monkeypatch):
    src = tmp_path / "a.bin"
    src.write_bytes(b"abc")

    def no_links(a, b):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    dst = link_or_copy(src, tmp_path / "new" / "b.bin")
    assert dst.read_bytes() == b"abc" and not os.path.samefile(src, dst)
    with pytest.raises(FileNotFoundError, match="missing.bin is not a file"):
        link_or_copy(tmp_path / "missing.bin", tmp_path / "c.bin")
