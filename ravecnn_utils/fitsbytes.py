"""FITS files as bytes: the block arithmetic (``padded``, ``data_size``; ``plainfits`` reads with
it) and files assembled from headers astropy wrote once, reused with a few cards changed.

``HDUList.writeto`` verifies and formats every card of every header, about 2 ms per file; a
survey of half a million small files of one layout needs only the cards that change formatted
(by astropy's own ``fits.Card``, so the bytes are those ``writeto`` writes).
"""

import io
import math

import numpy as np
from astropy.io import fits

BLOCK, CARD = 2880, 80
"""Bytes of a FITS block (headers and data are padded to a multiple of it) and of a header card."""


def padded(n):
    """``n`` bytes rounded up to whole FITS blocks."""
    return n + (-n % BLOCK)


def _integer(values, key):
    """An integer keyword's value (bool is not one), or None."""
    value = values.get(key)
    return value if type(value) is int else None


def data_size(values, primary):
    """Bytes of an HDU's data without padding, from its header ``values`` ({keyword: value}: BITPIX,
    NAXIS, NAXISn and, for an extension, PCOUNT and GCOUNT); None if they do not give them."""
    bitpix, naxis = _integer(values, "BITPIX"), _integer(values, "NAXIS")
    if bitpix not in (8, 16, 32, 64, -32, -64) or naxis is None or not 0 <= naxis <= 999:
        return None
    axes = [_integer(values, f"NAXIS{k}") for k in range(1, naxis + 1)]
    if any(a is None or a < 0 for a in axes):
        return None
    if not naxis:  # no data (the product of no axes is 0 here, not 1)
        return 0
    if primary:
        return abs(bitpix) // 8 * math.prod(axes)
    pcount, gcount = _integer(values, "PCOUNT"), _integer(values, "GCOUNT")
    if pcount is None or gcount is None or pcount < 0 or gcount < 0:
        return None
    return abs(bitpix) // 8 * gcount * (pcount + math.prod(axes))


def header_templates(hdul):
    """Each header of ``hdul`` as ``writeto`` writes it: a dict {keyword: card image}, in order
    (read back from the bytes; data sizes from BITPIX, NAXISn, PCOUNT and GCOUNT)."""
    buffer = io.BytesIO()
    hdul.writeto(buffer)
    raw, offset, headers = buffer.getvalue(), 0, []
    while offset < len(raw):
        cards = {}
        while not raw[offset:offset + CARD].startswith(b"END "):
            card = raw[offset:offset + CARD].decode("ascii")
            cards[card[:8].strip()] = card
            offset += CARD
        offset = padded(offset + CARD)
        value = {key: fits.Card.fromstring(cards[key]).value for key in cards
                 if key in ("BITPIX", "PCOUNT", "GCOUNT") or key.startswith("NAXIS")}
        offset += padded(data_size(value, primary=not headers))
        headers.append(cards)
    return headers


def card_images(cards):
    """{keyword: card image} of ``cards`` ({keyword: value or (value, comment)}), by ``fits.Card``."""
    return {key: fits.Card(key, *(value if isinstance(value, tuple) else (value,))).image
            for key, value in cards.items()}


def header_bytes(template, images):
    """A header: the ``template``'s card images with those of ``images`` replaced, END, padding."""
    text = "".join((template | images).values()) + "END".ljust(80)
    return text.ljust(padded(len(text))).encode("ascii")


def data_bytes(array, dtype):
    """The data of an image: ``array`` as big-endian ``dtype`` (e.g. ">f4"), padded with zeros."""
    raw = np.asarray(array).astype(dtype).tobytes()
    return raw + bytes(-len(raw) % BLOCK)
