"""Plain FITS images, read fast: only the cards asked for are parsed, other HDUs are skipped.

``read_plain_images`` reads a FITS file's primary header and the 1-D float images it is asked for
by name (EXTNAME). It parses only the cards it needs — the structure (BITPIX, NAXISn, PCOUNT,
GCOUNT, XTENSION, EXTNAME) and the keywords asked for — with astropy's own ``fits.Card`` (cached:
most cards repeat from file to file), and steps over every other HDU by the FITS size formula
(whole 2,880-byte blocks of header, then |BITPIX|/8 · GCOUNT · (PCOUNT + NAXIS1 ⋯ NAXISn) bytes
of data, padded to whole blocks).

It returns None for anything that is not that simple: scaled images (BSCALE, BZERO, BLANK),
integer, compressed or multi-dimensional images, random groups, CONTINUE or HIERARCH cards, a
keyword or an extension twice, a name that differs only in case or spaces, a card astropy warns
about, a missing END, a truncated file or bytes after the last HDU. The caller then reads the file
with ``astropy.io.fits.open``, which reads it or names the fault: this path never raises an error
of its own, and what it returns is what astropy would read.
"""

import functools
import warnings

import numpy as np
from astropy.io import fits

from .fitsbytes import BLOCK, CARD, data_size, padded

STRUCTURE = frozenset({"SIMPLE", "XTENSION", "BITPIX", "NAXIS", "PCOUNT", "GCOUNT", "EXTNAME"})
"""Keywords every header is parsed for (with NAXIS1 … NAXISn)."""

ANYWHERE = frozenset({"CONTINUE", "HIERARCH", "GROUPS"})
"""Keywords after which no header is read here: long strings, long keywords, random groups."""

IN_IMAGES = frozenset({"BSCALE", "BZERO", "BLANK", "ZIMAGE"})
"""Keywords after which an image asked for is not plain (scaled or compressed data)."""

FLOATS = {-32: ">f4", -64: ">f8"}
"""BITPIX of the float images read here, and their (big-endian) numpy type."""

_NO = object()  # a card astropy would not read silently


@functools.lru_cache(maxsize=4096)
def _card(image):
    """(keyword, value) of one 80-character card image as astropy reads it; ``_NO`` if astropy
    warns about the card or cannot read it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            card = fits.Card.fromstring(image)
            return card.keyword, card.value
        except Exception:  # noqa: BLE001 - anything astropy objects to goes to astropy
            return _NO


def _header(buf, start, keys):
    """Parse the header starting at byte ``start``: ({keyword: value} of the structure keywords
    and ``keys``, set of the ``ANYWHERE`` and ``IN_IMAGES`` keywords present, offset of the data),
    or None if this path does not read it."""
    values, special, pos = {}, set(), start
    while pos + BLOCK <= len(buf):
        try:
            text = buf[pos:pos + BLOCK].decode("ascii")
        except UnicodeDecodeError:
            return None
        pos += BLOCK
        for i in range(0, BLOCK, CARD):
            image = text[i:i + CARD]
            key = image[:8].rstrip().upper()
            if key == "END":  # END in capitals, then nothing but blanks to the end of the block
                ended = image[:3] == "END" and not image[3:].strip() and not text[i + CARD:].strip()
                return (values, special, pos) if ended else None
            if key in ANYWHERE or key in IN_IMAGES:
                special.add(key)
            elif key in STRUCTURE or key in keys or key.startswith("NAXIS"):
                parsed = _card(image)
                if parsed is _NO or parsed[0] != key or key in values:
                    return None
                values[key] = parsed[1]
    return None  # no END before the end of the file


def read_plain_images(path, names, keys=()):
    """Read the plain 1-D float images ``names`` (their EXTNAME) of the FITS file ``path``.

    Returns (primary, images): ``primary`` the primary header's ``keys`` that are present (dict),
    ``images`` {name: (header dict of the structure keywords and ``keys`` present, float64 data)};
    or None when the file is not that simple (see the module's docstring): then read it with
    astropy. An OSError of opening the file is raised as it is.
    """
    keys = frozenset(keys)
    with open(path, "rb") as handle:
        buf = handle.read()
    if not buf.startswith(b"SIMPLE  ="):
        return None
    primary, found, pos = None, {}, 0
    while pos < len(buf):
        parsed = _header(buf, pos, keys)
        if parsed is None:
            return None
        values, special, start = parsed
        if special & ANYWHERE:
            return None
        if pos == 0:
            if values.get("SIMPLE") is not True or "EXTNAME" in values or "XTENSION" in values:
                return None
            primary = {k: v for k, v in values.items() if k in keys}
        elif not isinstance(values.get("XTENSION"), str):
            return None
        size = data_size(values, primary=pos == 0)
        if size is None or start + padded(size) > len(buf):
            return None  # truncated: astropy says so
        name = str(values.get("EXTNAME", ""))
        if pos and name in names:
            if (name in found or values["XTENSION"] != "IMAGE" or special & IN_IMAGES
                    or values["BITPIX"] not in FLOATS or values["NAXIS"] != 1 or values.get("NAXIS1", 0) < 1
                    or values.get("PCOUNT") != 0 or values.get("GCOUNT") != 1):
                return None
            data = np.frombuffer(buf, FLOATS[values["BITPIX"]], values["NAXIS1"], start)
            found[name] = (values, data.astype(float))
        elif pos and name.strip().upper() in names:
            return None  # astropy finds HDUs by name regardless of case and spaces
        pos = start + padded(size)
    if set(found) != set(names):
        return None  # astropy names the missing extension
    return primary, found
