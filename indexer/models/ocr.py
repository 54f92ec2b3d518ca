"""The text reader: the words a photo shows, line by line, with where they are (OCR).

PP-OCRv4 (Chinese and English recognition, 180° orientation classifier, DB text detector) run
by ONNX Runtime through `rapidocr-onnxruntime`, whose wheel ships the three model files: nothing
is downloaded at run time. Three stages, each run only when the one before found something:

1. detection on a reduced picture, short side DETECT_SIDE (the detector's own input size in
   RapidOCR's configuration): a photo with no text costs this one pass and nothing else;
2. orientation: each detected line, cropped upright from a sharper picture, is turned 180° when
   the classifier says it is upside down;
3. recognition of the cropped lines, in batches.

Boxes are four corners in the displayed (EXIF-oriented) picture, as fractions of its width and
height (0..1), so they hold for any size it is shown at. The text is untrusted (anyone can put
any string in front of a camera or in a screenshot): `clean_text` removes control and
bidirectional-override characters and caps the length before anything is stored.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.errors import ImgcapError, UsageError

OCR_NEEDS_EXTRA = "reading text in photos needs the ocr extra: pip install 'imgcap[ocr]'"
READER_NAME = "PP-OCRv4 (rapidocr-onnxruntime)"  # stored with each read, for later re-reads
DETECT_SIDE = 736  # short side the detector sees (RapidOCR's limit_side_len, limit_type "min")
MIN_CONFIDENCE = 0.5  # recognised lines below this are dropped (RapidOCR's own text_score)
MAX_LINE_CHARS = 200  # one line longer than this is cut: a line of a page is ~100
MAX_LINES = 400  # a dense scanned page has ~60; more is noise (a texture read as text)
MAX_SIDE = 2000  # the longest side detection and recognition see (RapidOCR's max_side_len)
MAX_UPSCALE = 4.0  # a picture smaller than the detector's size is enlarged at most this much

# Format characters that reorder or hide text (bidi embeddings, overrides, isolates, marks),
# plus zero-width ones: shown, they make a line read differently from what is stored.
_HIDDEN = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)}
_HIDDEN |= {"\u061c", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}


def clean_text(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """`text` with control, bidi-override and zero-width characters removed, runs of white space
    as one space, NFC-normalised, at most `limit` characters."""
    kept = []
    for ch in unicodedata.normalize("NFC", text):
        if ch in _HIDDEN:
            continue
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            kept.append(" ")  # a tab or newline between two words still separates them
            continue
        kept.append(ch)
    return " ".join("".join(kept).split())[:limit].strip()


@dataclass(frozen=True, slots=True)
class TextLine:
    """One line of text seen in a picture."""

    text: str  # cleaned (clean_text)
    confidence: float  # the recogniser's mean character probability, 0..1
    # (x0, y0, x1, y1, x2, y2, x3, y3): corners clockwise from the top left, 0..1
    box: tuple[float, ...]


def import_rapidocr() -> Any:
    """The RapidOCR class, or UsageError saying how to install it."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        raise UsageError(OCR_NEEDS_EXTRA) from None
    return RapidOCR


def extra_installed() -> bool:
    try:
        import_rapidocr()
    except UsageError:
        return False
    return True


class TextReader:
    """The three PP-OCRv4 models, loaded once; `read` a picture. `calls` counts the pictures
    read (tests check that copies and moves are never read again)."""

    name = READER_NAME

    def __init__(self, threads: int = 0):
        """`threads`: ONNX Runtime's threads per model (0: one per core)."""
        rapid_ocr = import_rapidocr()
        n = threads if threads > 0 else -1
        try:
            engine = rapid_ocr(intra_op_num_threads=n, inter_op_num_threads=1, print_verbose=False)
        except Exception as e:  # noqa: BLE001 - a broken install is a message, not a traceback
            reason = f"the OCR models could not be loaded: {type(e).__name__}: {e}"
            raise ImgcapError(reason) from None
        self.detector = engine.text_det
        # `read` sizes the detector's input itself: RapidOCR's own rule ("min" 736) would blow a
        # 40×12 picture or a panorama's reduced decode up to thousands of pixels wide.
        self.detector.limit_type, self.detector.limit_side_len = "max", MAX_SIDE
        self.classifier = engine.text_cls
        self.recogniser = engine.text_rec
        self._engine = engine
        self.calls = 0

    def read(self, image: Any, sharper: Callable[[], Any] | None = None) -> list[TextLine]:
        """The lines of text in PIL `image` (any mode; EXIF orientation already applied), top to
        bottom. `sharper`: gives the same picture at a higher resolution, called only when text
        was found, for recognition (None: crops come from `image`). Raises whatever the models
        raise for a picture they cannot take; the caller records it."""
        self.calls += 1
        w, h = image.size
        if min(w, h) < 8:
            return []  # nothing a detector with 32-pixel strides could see
        # The detector's size, but a tiny picture at most MAX_UPSCALE times larger (there is
        # no more detail to find) and a panorama at most MAX_SIDE long.
        factor = min(DETECT_SIDE / min(w, h), MAX_UPSCALE, MAX_SIDE / max(w, h))
        small = _bgr(_resized(image, factor))  # (h', w', 3)
        boxes, _ = self.detector(small)
        if boxes is None or len(boxes) == 0:
            return []  # the cheap rejection: most photos end here
        boxes = self._engine.sorted_boxes(boxes)[:MAX_LINES]
        big = image if sharper is None else sharper()
        if max(big.size) > MAX_SIDE:
            big = _resized(big, MAX_SIDE / max(big.size))
        bw, bh = big.size
        scale = np.array([bw / small.shape[1], bh / small.shape[0]], dtype=np.float32)
        corners = [(np.asarray(b, dtype=np.float32) * scale) for b in boxes]  # (4, 2) each
        crops = self._engine.get_crop_img_list(_bgr(big), corners)
        crops = [c for c in crops if min(c.shape[:2]) > 0]
        if len(crops) != len(corners):
            return []
        crops, _, _ = self.classifier(crops)
        recognised, _ = self.recogniser(crops)
        lines = []
        for box, (text, conf) in zip(corners, recognised, strict=True):
            text = clean_text(str(text))
            if not text or float(conf) < MIN_CONFIDENCE:
                continue
            norm = (box / np.array([bw, bh], dtype=np.float32)).clip(0.0, 1.0)
            corners_01 = tuple(round(float(v), 4) for v in norm.ravel())
            lines.append(TextLine(text, round(float(conf), 4), corners_01))
        return lines


def _resized(image: Any, factor: float) -> Any:
    """PIL `image` scaled by `factor` (area-averaged when shrinking), as RGB."""
    from PIL import Image

    image = image.convert("RGB")
    if abs(factor - 1.0) < 1e-3:
        return image
    w, h = image.size
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    resample = Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR
    return image.resize(size, resample)


def _bgr(image: Any) -> np.ndarray:
    """PIL RGB -> (H, W, 3) uint8 BGR, the channel order PaddleOCR's models were trained on."""
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[:, :, ::-1])
