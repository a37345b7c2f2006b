"""FITS files assembled from bytes: headers astropy wrote once, reused with a few cards changed.

``HDUList.writeto`` verifies and formats every card of every header, about 2 ms per file; a
survey of half a million small files of one layout needs only the cards that change formatted
(by astropy's own ``fits.Card``, so the bytes are those ``writeto`` writes).
"""

import io

import numpy as np
from astropy.io import fits

BLOCK = 2880
"""Bytes of a FITS block: headers and data are padded to a multiple of it."""


def _padded(n):
    return n + (-n % BLOCK)


def header_templates(hdul):
    """Each header of ``hdul`` as ``writeto`` writes it: a dict {keyword: card image}, in order
    (read back from the bytes; data sizes from BITPIX, NAXISn, PCOUNT and GCOUNT)."""
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    raw, offset, headers = buffer.getvalue(), 0, []
    while offset < len(raw):
        cards = {}
        while not raw[offset:offset + 80].startswith(b"END "):
            card = raw[offset:offset + 80].decode("ascii")
            cards[card[:8].strip()] = card
            offset += 80
        offset = _padded(offset + 80)
        value = {key: fits.Card.fromstring(cards[key]).value for key in cards
                 if key in ("BITPIX", "PCOUNT", "GCOUNT") or key.startswith("NAXIS")}
        shape = [value[f"NAXIS{i}"] for i in range(1, value["NAXIS"] + 1)]
        if shape:
            offset += _padded(abs(value["BITPIX"]) // 8 * value.get("GCOUNT", 1)
                              * (value.get("PCOUNT", 0) + int(np.prod(shape))))
        headers.append(cards)
    return headers


def card_images(cards):
    """{keyword: card image} of ``cards`` ({keyword: value or (value, comment)}), by ``fits.Card``."""
    return {key: fits.Card(key, *(value if isinstance(value, tuple) else (value,))).image
            for key, value in cards.items()}


def header_bytes(template, images):
    """A header: the ``template``'s card images with those of ``images`` replaced, END, padding."""
    text = "".join((template | images).values()) + "END".ljust(80)
    return text.ljust(_padded(len(text))).encode("ascii")


def data_bytes(array, dtype):
    """The data of an image: ``array`` as big-endian ``dtype`` (e.g. ">f4"), padded with zeros."""
    raw = np.asarray(array).astype(dtype).tobytes()
    return raw + bytes(-len(raw) % BLOCK)
