"""Read Pascal VOC annotation XML into per-image normalised labels.

Format (the VOC development kit, "The PASCAL Visual Object Classes Challenge" devkit doc, section
"Annotation"): one XML file per image::

    <annotation>
      <filename>000005.jpg</filename>
      <size><width>500</width><height>375</height><depth>3</depth></size>
      <object>
        <name>chair</name> <truncated>0</truncated> <difficult>1</difficult>
        <bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox>
      </object>
    </annotation>

Coordinates: VOC pixel indices are 1-based and inclusive (the devkit's ``VOCevaldet`` computes a width as
``xmax - xmin + 1``). They become 0-based continuous edges ``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax,
y2 = ymax`` (a box of the single top-left pixel, ``xmin = xmax = 1``, is ``[0, 1]``), then rows ``(cls, cx, cy,
w, h)`` normalised to the image size. ``difficult`` objects become ignore regions, class ``-1`` rows, as the
VOC evaluation ignores them (their class is not checked); ``truncated`` is kept per row in
:attr:`VocIndex.truncated`.

Layouts (:func:`voc_files`): a VOC root (``Annotations/*.xml`` + ``JPEGImages/``), a VOC split list
(``<root>/ImageSets/Main/<split>.txt``, one image id per line), or a folder with an XML beside each image.
The image is ``<filename>`` in the image folder; when that file is absent, the image of the same stem (of
``<filename>``, then of the XML) with any image suffix is taken (exporters often name a ``.tif`` whose ``.png``
copy is what ships).

Bad input is reported in the :class:`data.report.DatasetReport` (raised under ``strict``) and the rest loads:
an unparsable XML (``bad_label_file``, with its line), an image that is not there (``bad_image``), an object
with a bad or unknown class or a bad ``bndbox`` (``bad_annotation``), a box partly outside the image
(``clipped``; dropped as ``bad_annotation`` when nothing is left), a missing ``size`` (``missing_size``: taken
from the image header; the image is skipped when it has none).
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .report import DatasetError, DatasetNotFoundError, DatasetReport
from .sources import IMG_SUFFIXES, label_file
from .verify import image_shape


@dataclass
class VocObject:
    """One ``<object>``: its (mapped) name, 0-based pixel box ``(x1, y1, x2, y2)`` and flags."""

    name: str
    box: tuple[float, float, float, float]
    difficult: bool
    truncated: bool
    where: str  # "object[k]" for messages


@dataclass
class VocRecord:
    """One parsed XML: the image found for it (``None``: absent), its ``(h, w)`` and objects."""

    xml: str
    image: str | None
    shape: tuple[int, int] | None
    objects: list[VocObject] = field(default_factory=list)


@dataclass
class VocIndex:
    """The usable content of a VOC source, per kept image (parallel lists).

    ``labels[i]``: float32 ``[n, 5]`` ``(cls, cx, cy, w, h)`` normalised to ``shapes[i] = (h, w)``; class ``-1``
    rows are difficult objects. ``truncated[i]``: bool ``[n]``, the ``truncated`` flag of each row.
    """

    xml_files: list[str]
    image_files: list[str]
    shapes: list[tuple[int, int]]
    labels: list[np.ndarray]
    truncated: list[np.ndarray]
    names: list[str]
    images_found: int


def is_voc_source(entry: object) -> bool:
    """Whether a data YAML split entry names VOC: a folder holding ``Annotations/`` or ``.xml`` files, or a
    ``.txt`` list inside ``ImageSets/Main``. A folder whose yolov5 ``labels`` folder exists stays yolov5 (its
    label files win over XML files lying beside the images)."""
    if not isinstance(entry, str | os.PathLike):
        return False
    p = Path(entry).expanduser()
    if p.is_file() and p.suffix.lower() == ".txt":
        return p.parent.name == "Main" and p.parent.parent.name == "ImageSets"
    if not p.is_dir():
        return False
    if (p / "Annotations").is_dir():
        return True
    labels = Path(label_file(os.path.join(os.path.abspath(p), "x.png"))).parent
    if labels != Path(os.path.abspath(p)) and labels.is_dir():
        return False
    with os.scandir(p) as it:
        return any(e.name.lower().endswith(".xml") for e in it)


def voc_files(source: str | os.PathLike) -> tuple[list[Path], Path]:
    """``(xml files, image folder)`` of a VOC root, a ``ImageSets/Main/<split>.txt`` list, or a folder of XMLs."""
    p = Path(source).expanduser()
    if p.is_file() and p.suffix.lower() == ".txt":
        root = p.parent.parent.parent
        ids = [ln.split()[0] for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
        return [root / "Annotations" / f"{i}.xml" for i in ids], root / "JPEGImages"
    if not p.is_dir():
        raise DatasetNotFoundError(f"VOC source not found: {p} (a VOC root, ImageSets/Main/<split>.txt or XML folder)")
    if (p / "Annotations").is_dir():
        return sorted((p / "Annotations").glob("*.xml")), p / "JPEGImages"
    return sorted(q for q in p.iterdir() if q.suffix.lower() == ".xml"), p


def find_image(folder: Path, filename: str, xml_stem: str) -> str | None:
    """``folder/filename`` if present, else the first ``folder/<stem><suffix>`` that is (stems of the file name,
    then of the XML; suffixes in :data:`data.sources.IMG_SUFFIXES` order, either case)."""
    if filename and (folder / filename).is_file():
        return os.path.abspath(folder / filename)
    for stem in dict.fromkeys(s for s in (Path(filename).stem, xml_stem) if s):
        for suf in IMG_SUFFIXES:
            for cand in (folder / f"{stem}{suf}", folder / f"{stem}{suf.upper()}"):
                if cand.is_file():
                    return os.path.abspath(cand)
    return None


def parse_voc_xml(xml: Path, image_dir: Path, report: DatasetReport) -> VocRecord | None:
    """Parse one XML; ``None`` (reported) when it cannot be read or its image or size cannot be found."""
    src = str(xml)
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as e:
        report.add("bad_label_file", src, e.position[0], f"malformed XML: {e}")
        return None
    except OSError as e:
        report.add("bad_label_file", src, None, f"cannot read annotation: {e.strerror or e}")
        return None
    if root.tag != "annotation":
        report.add("bad_label_file", src, None, f"root element is <{root.tag}>, expected <annotation>")
        return None
    filename = (root.findtext("filename") or "").strip()
    image = find_image(image_dir, filename, xml.stem)
    if image is None:
        report.add("bad_image", src, None, f"image {filename or xml.stem!r} not found in {image_dir}")
        return None
    shape = _size(root)
    if shape is None:
        shape, why = image_shape(image)
        if shape is None:
            report.add("bad_image", src, None, f"no usable <size> and the image {image} gives none: {why}")
            return None
        report.add("missing_size", src, None, f"no usable <size>: {shape[1]}x{shape[0]} from the image header")
    rec = VocRecord(src, image, shape)
    for k, obj in enumerate(root.iter("object")):
        o = _object(obj, f"object[{k}]", shape, src, report)
        if o is not None:
            rec.objects.append(o)
    return rec


def _size(root: ET.Element) -> tuple[int, int] | None:
    """``(h, w)`` of ``<size>``, ``None`` when absent or not two positive whole numbers."""
    vals = []
    for tag in ("height", "width"):
        v = _number(root.findtext(f"size/{tag}"))
        if v is None or v <= 0 or not float(v).is_integer():
            return None
        vals.append(int(v))
    return vals[0], vals[1]


def _number(text: str | None) -> float | None:
    try:
        v = float((text or "").strip())
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _flag(obj: ET.Element, tag: str) -> bool | None:
    """``<tag>`` as a 0/1 flag (absent: 0); ``None`` for anything else."""
    text = obj.findtext(tag)
    if text is None or not text.strip():
        return False
    v = _number(text)
    return None if v not in (0.0, 1.0) else bool(v)


def _object(obj: ET.Element, where: str, shape: tuple[int, int], src: str, report: DatasetReport):
    """One ``<object>`` as a :class:`VocObject` with its box clipped to the image, or ``None`` (reported)."""
    name = (obj.findtext("name") or "").strip()
    if not name:
        report.add("bad_annotation", src, None, f"{where}: no <name>")
        return None
    where = f"{where} ({name})"
    flags = {t: _flag(obj, t) for t in ("difficult", "truncated")}
    for t, v in flags.items():
        if v is None:
            report.add("bad_annotation", src, None, f"{where}: <{t}> must be 0 or 1, got {obj.findtext(t)!r}")
            return None
    parsed = [_number(obj.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")]
    raw = [v for v in parsed if v is not None]
    if len(raw) != 4:
        got = [obj.findtext(f"bndbox/{t}") for t in ("xmin", "ymin", "xmax", "ymax")]
        report.add("bad_annotation", src, None, f"{where}: <bndbox> needs numbers xmin ymin xmax ymax, got {got}")
        return None
    x1, y1, x2, y2 = raw[0] - 1, raw[1] - 1, raw[2], raw[3]  # 1-based -> 0-based edges
    if x2 <= x1 or y2 <= y1:
        report.add("bad_annotation", src, None, f"{where}: <bndbox> {raw} has xmax < xmin or ymax < ymin")
        return None
    h, w = shape
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w)), min(y2, float(h))
    if cx2 <= cx1 or cy2 <= cy1:
        report.add("bad_annotation", src, None, f"{where}: <bndbox> {raw} lies outside the {w}x{h} image; dropped")
        return None
    if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
        report.add("clipped", src, None, f"{where}: <bndbox> {raw} extends past the {w}x{h} image; clipped")
    if flags["difficult"]:
        report.add("difficult", src, None, f"{where}: difficult object kept as an ignore region (class -1)")
    return VocObject(name, (cx1, cy1, cx2, cy2), bool(flags["difficult"]), bool(flags["truncated"]), where)


def read_voc(source: str | os.PathLike, report: DatasetReport, names: list[str] | None = None,
             name_map: dict[str, str] | None = None) -> VocIndex:  # fmt: skip
    """Read every XML of ``source`` (see :func:`voc_files`) into a :class:`VocIndex`.

    ``name_map``: object name -> class name, applied first (e.g. ``{"Alive": "tree", "Dead": "tree"}``); names
    not in it stay as they are. ``names``: the class list (an object whose mapped name is not in it is a
    ``bad_annotation``); ``None``: the sorted set of mapped names of the objects that are not difficult (a
    difficult object is an ignore region whatever its name).
    """
    name_map = check_name_map(name_map, str(source))
    xmls, image_dir = voc_files(source)
    records = []
    for x in xmls:
        if not x.is_file():
            report.add("bad_label_file", str(x), None, "annotation file listed but not found")
            continue
        rec = parse_voc_xml(x, image_dir, report)
        if rec is not None:
            records.append(rec)
    for rec in records:
        for o in rec.objects:
            o.name = name_map.get(o.name, o.name)
    if names is None:
        names = sorted({o.name for r in records for o in r.objects if not o.difficult})
    index = VocIndex([], [], [], [], [], list(names), images_found=len(xmls))
    cls_of = {n: i for i, n in enumerate(names)}
    for rec in records:
        _add_record(index, rec, cls_of, report)
    return index


def _add_record(index: VocIndex, rec: VocRecord, cls_of: dict[str, int], report: DatasetReport) -> None:
    rows, trunc = [], []
    h, w = rec.shape  # type: ignore[misc]
    for o in rec.objects:
        if not o.difficult and o.name not in cls_of:
            report.add("bad_annotation", rec.xml, None, f"{o.where}: class {o.name!r} not in names {list(cls_of)}")
            continue
        x1, y1, x2, y2 = o.box
        cls = -1.0 if o.difficult else float(cls_of[o.name])
        rows.append((cls, (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h))
        trunc.append(o.truncated)
    index.xml_files.append(rec.xml)
    index.image_files.append(rec.image)  # type: ignore[arg-type]
    index.shapes.append((h, w))
    index.labels.append(np.array(rows, np.float32).reshape(-1, 5))
    index.truncated.append(np.array(trunc, bool))


def check_name_map(name_map: object, source: str) -> dict[str, str]:
    """A ``name_map`` (``None`` -> ``{}``) checked to map strings to non-empty strings."""
    if name_map is None:
        return {}
    if not isinstance(name_map, dict):
        raise DatasetError(f"{source}: name_map must be a mapping of object name -> class name, got {name_map!r}")
    for k, v in name_map.items():
        if not isinstance(k, str) or not isinstance(v, str) or not v.strip():
            raise DatasetError(f"{source}: name_map entry {k!r}: {v!r} must map a name to a non-empty name")
    return dict(name_map)
