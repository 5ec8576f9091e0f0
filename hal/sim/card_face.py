"""Synthetic My Number card faces (front side), photographed by a simulated card camera.

Why: the 照合番号B OCR must be measured on thousands of frames with known truth, and no real card
may be photographed for a test. This renderer draws the front of a card approximating the real
layout (name, address, birth date in 和暦, sex, expiry line, a photo box, the 4-digit security code),
places it on a desk in a camera frame and degrades the frame the ways ``card-ocr.md`` lists: tilt
±8°, scale ±15 %, a little perspective, blur, sensor noise, JPEG, glare and uneven light.

Everything random comes from the ``numpy.random.Generator`` passed in, so a seed reproduces a frame
bit for bit. The layout is an approximation: the real crop boxes, the engraved font and the code's
position must be measured on real cards before deployment (see docs/notes/card-ocr.md).

The 和暦 formatting here is deliberately written independently of ``firmware.card.ocr.era`` (hal
never imports firmware); a unit test checks that both agree on every boundary.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hal.errors import DeviceError

log = logging.getLogger(__name__)

FONT_PATHS = (
    Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf"),
    Path("/usr/share/fonts/truetype/fonts-japanese-gothic.ttf"),
)
CARD_W_MM, CARD_H_MM = 85.60, 53.98  # ISO/IEC 7810 ID-1
RENDER_PX_PER_MM = 16
FRAME_SIZE = (1280, 960)  # (width, height) of the card camera's frame
NOMINAL_CARD_WIDTH_PX = 940  # card width in the frame before the ±15 % scale jitter (~11 px/mm)
#: Gregorian date the random generator treats as "today" unless told otherwise (keeps seeds stable).
REFERENCE_TODAY = dt.date(2026, 11, 1)

# Era starts (first day). Newest first; the 和暦 of a date is the first era that started on or before it.
_ERA_STARTS = (("令和", dt.date(2019, 5, 1)), ("平成", dt.date(1989, 1, 8)), ("昭和", dt.date(1926, 12, 25)))

# Text positions on the canonical card, in millimetres from the top-left corner: (x, y_top, size).
LAYOUT_MM = {
    "name_label": (3.0, 4.6, 2.0),
    "name": (10.0, 3.6, 4.0),
    "address_label": (3.0, 11.6, 2.0),
    "address": (10.0, 11.0, 2.8),
    "address2": (10.0, 14.6, 2.8),
    "birth": (10.0, 29.6, 2.8),
    "sex": (46.0, 29.6, 2.8),
    "expiry": (10.0, 36.4, 2.8),
    "title": (3.0, 46.5, 3.6),
    "code_label": (61.0, 36.2, 1.7),
    "code": (65.0, 39.4, 3.2),
}
PHOTO_BOX_MM = (60.0, 4.0, 82.0, 33.5)  # x0, y0, x1, y1

_SURNAMES = ("番号", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田",
             "山田", "佐々木", "松本", "井上", "木村", "斎藤", "清水", "長谷川")
_GIVEN = ("花子", "太郎", "一郎", "陽子", "翔太", "美咲", "健", "さくら", "大輔", "結衣", "蓮", "陽菜",
          "和夫", "幸子", "誠", "恵美", "浩二", "直美", "悠真", "葵")
_ADDRESSES = (("東京都千代田区霞が関", "二丁目１番２号"), ("大阪府大阪市北区梅田", "三丁目４番５号"),
              ("北海道札幌市中央区", "北一条西５丁目６"), ("福岡県福岡市博多区", "博多駅前二丁目７番"),
              ("愛知県名古屋市中区三の丸", "一丁目８番９号"), ("沖縄県那覇市泉崎", "一丁目２番地"),
              ("宮城県仙台市青葉区本町", "三丁目８番１号"), ("京都府京都市上京区", "下立売通新町西入"))


@dataclass(frozen=True)
class CardFaceFields:
    """What is printed on the front of one card (the truth a synthetic frame is rendered from)."""

    name: str
    address: tuple[str, str]
    birth_date: dt.date
    sex: str  # "男" or "女"
    expiry_date: dt.date
    security_code: str  # four ASCII digits

    def __post_init__(self) -> None:
        if len(self.security_code) != 4 or not self.security_code.isdigit():
            raise ValueError(f"security_code must be 4 ASCII digits, not {self.security_code!r}")
        if self.sex not in ("男", "女"):
            raise ValueError(f"sex must be 男 or 女, not {self.sex!r}")
        wareki(self.birth_date)  # raises for births before 昭和

    @property
    def birth_line(self) -> str:
        """The birth line as printed, e.g. ``昭和55年 2月17日生`` (元年 for an era's first year)."""
        era, year = wareki(self.birth_date)
        year_text = "元" if year == 1 else f"{year:2d}"
        return f"{era}{year_text}年{self.birth_date.month:2d}月{self.birth_date.day:2d}日生"

    @property
    def expiry_line(self) -> str:
        """The expiry line as printed, e.g. ``2035年 2月17日まで有効``."""
        d = self.expiry_date
        return f"{d.year}年{d.month:2d}月{d.day:2d}日まで有効"

    @property
    def collation_b(self) -> str:
        """The 14-digit 照合番号B the card's 券面事項確認AP expects for these fields."""
        _, year = wareki(self.birth_date)
        b = self.birth_date
        return f"{year:02d}{b.month:02d}{b.day:02d}{self.expiry_date.year:04d}{self.security_code}"

    @property
    def expiry_on_birthday(self) -> bool:
        """True when the card expires on the holder's birthday (most cards; the OCR gate needs it)."""
        return (self.expiry_date.month, self.expiry_date.day) == (self.birth_date.month, self.birth_date.day)


def wareki(day: dt.date) -> tuple[str, int]:
    """The era name and era year of a Gregorian date (昭和 onwards)."""
    for era, start in _ERA_STARTS:
        if day >= start:
            return era, day.year - start.year + 1
    raise ValueError(f"{day.isoformat()} is before 昭和 (1926-12-25): not supported on synthetic cards")


def _nth_birthday_after(birth: dt.date, after: dt.date, n: int) -> dt.date:
    """The n-th birthday strictly after ``after`` (29 Feb falls back to 28 Feb in common years)."""
    year = after.year
    found = 0
    while True:
        try:
            candidate = birth.replace(year=year)
        except ValueError:
            candidate = dt.date(year, 2, 28)
        if candidate > after:
            found += 1
            if found == n:
                return candidate
        year += 1


def random_fields(rng: np.random.Generator, *, today: dt.date = REFERENCE_TODAY,
                  other_expiry_rate: float = 0.05) -> CardFaceFields:
    """Draw a plausible card: births across 昭和/平成/令和, issued since 2016, mostly valid today.

    Expiry follows the real rule (10th birthday after issue for adults, 5th for minors), so it falls
    on the birthday; ``other_expiry_rate`` of cards get an unrelated expiry date instead, as some
    foreign residents' cards do (the OCR gate must send those to PIN/staff).
    """
    first_birth = dt.date(1927, 1, 1)
    span_days = (today - dt.timedelta(days=30) - first_birth).days
    birth = first_birth + dt.timedelta(days=int(rng.integers(0, span_days)))
    earliest_issue = max(dt.date(2016, 1, 1), birth + dt.timedelta(days=7))
    issue = earliest_issue + dt.timedelta(days=int(rng.integers(0, max(1, (today - earliest_issue).days))))
    age_at_issue = issue.year - birth.year - ((issue.month, issue.day) < (birth.month, birth.day))
    expiry = _nth_birthday_after(birth, issue, 10 if age_at_issue >= 18 else 5)
    if rng.random() < other_expiry_rate:
        while (expiry.month, expiry.day) == (birth.month, birth.day):
            expiry = issue + dt.timedelta(days=int(rng.integers(365, 3650)))
    return CardFaceFields(
        name=f"{_SURNAMES[rng.integers(len(_SURNAMES))]}\u3000{_GIVEN[rng.integers(len(_GIVEN))]}",
        address=_ADDRESSES[rng.integers(len(_ADDRESSES))],
        birth_date=birth,
        sex=("男", "女")[int(rng.integers(2))],
        expiry_date=expiry,
        security_code=f"{int(rng.integers(0, 10000)):04d}",
    )


@functools.cache
def _font_path() -> Path:
    for path in FONT_PATHS:
        if path.exists():
            return path
    raise DeviceError("no Japanese font for the card-face renderer: install fonts-ipaexfont-gothic "
                      f"(apt-get install fonts-ipaexfont-gothic); looked in {', '.join(map(str, FONT_PATHS))}")


@functools.lru_cache(maxsize=32)
def _font(size_px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(_font_path()), size_px)


def _mm(value: float) -> int:
    return round(value * RENDER_PX_PER_MM)


def render_card(fields: CardFaceFields, rng: np.random.Generator) -> np.ndarray:
    """Draw the flat card front at ``RENDER_PX_PER_MM`` (RGB uint8, no camera effects)."""
    w, h = _mm(CARD_W_MM), _mm(CARD_H_MM)
    # Pale base with a faint guilloche-like wave pattern, as the real card's printed background
    # (computed at quarter resolution: it only varies over millimetres).
    yy, xx = np.mgrid[0:h:4, 0:w:4].astype(np.float32)
    base = np.array([236, 240, 236], np.float32) + rng.uniform(-6, 6, 3).astype(np.float32)
    phase = float(rng.uniform(0, 2 * np.pi))
    wave = 4.0 * np.sin(xx / 23.0 + 3.0 * np.sin(yy / 41.0 + phase)) * np.sin(yy / 17.0)
    wave = cv2.resize(wave, (w, h), interpolation=cv2.INTER_LINEAR)
    card = np.clip(base[None, None, :] + wave[..., None] * np.array([0.6, 1.0, 0.8], np.float32), 0, 255)
    image = Image.fromarray(card.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    ink = tuple(int(v) for v in rng.integers(15, 45, 3))
    grey = (110, 110, 110)

    def text(key: str, value: str, fill) -> None:
        x, y, size = LAYOUT_MM[key]
        draw.text((_mm(x), _mm(y)), value, font=_font(_mm(size)), fill=fill)

    text("name_label", "氏名", grey)
    text("name", fields.name, ink)
    text("address_label", "住所", grey)
    text("address", fields.address[0], ink)
    text("address2", fields.address[1], ink)
    text("birth", fields.birth_line, ink)
    text("sex", f"性別 {fields.sex}", ink)
    text("expiry", fields.expiry_line, ink)
    text("title", "個人番号カード", (40, 60, 110))
    text("code_label", "セキュリティコード", grey)
    text("code", fields.security_code, ink)
    # Photo box: a grey silhouette only (the renderer never needs, nor stores, a face).
    x0, y0, x1, y1 = (_mm(v) for v in PHOTO_BOX_MM)
    draw.rectangle((x0, y0, x1, y1), fill=(200, 204, 208), outline=(150, 150, 150), width=2)
    cx, cy = (x0 + x1) // 2, y0 + (y1 - y0) * 2 // 5
    draw.ellipse((cx - _mm(5), cy - _mm(6.5), cx + _mm(5), cy + _mm(6.5)), fill=(120, 118, 116))
    draw.chord((x0 + _mm(2), y1 - _mm(9), x1 - _mm(2), y1 + _mm(9)), 180, 360, fill=(90, 92, 96))
    return np.asarray(image)


def _card_mask(w: int, h: int) -> np.ndarray:
    """Rounded-corner mask of the card (3 mm corner radius, as ID-1 cards)."""
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, w - 1, h - 1), radius=_mm(3.0), fill=255)
    return np.asarray(mask)


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A dark tray/desk surface with low-frequency shading (the sensor noise adds the grain)."""
    base = rng.uniform(25, 95, 3).astype(np.float32)
    coarse = cv2.resize(rng.normal(0, 12, (6, 8, 3)).astype(np.float32), (width, height),
                        interpolation=cv2.INTER_CUBIC)
    return coarse + base[None, None, :]


def _smooth_field(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """Upsample a coarse (h, w) float field to the frame: light and glare vary slowly in space."""
    return cv2.resize(values.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def _camera_homography(rng: np.random.Generator, card_w: int, card_h: int,
                       frame_w: int, frame_h: int) -> np.ndarray:
    """Canonical card → frame: scale ±15 %, tilt ±8°, a little perspective, random placement."""
    scale = NOMINAL_CARD_WIDTH_PX / card_w * rng.uniform(0.85, 1.15)
    angle = np.deg2rad(rng.uniform(-8.0, 8.0))
    corners = np.array([[0, 0], [card_w, 0], [card_w, card_h], [0, card_h]], np.float32)
    centred = (corners - [card_w / 2, card_h / 2]) * scale
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    moved = centred @ rot.T
    moved += rng.uniform(-0.02, 0.02, (4, 2)).astype(np.float32) * NOMINAL_CARD_WIDTH_PX  # perspective
    span = moved.max(axis=0) - moved.min(axis=0)
    margin = 20.0
    room_x = max(0.0, frame_w - span[0] - 2 * margin)
    room_y = max(0.0, frame_h - span[1] - 2 * margin)
    offset = np.array([margin + rng.uniform(0, room_x) - moved[:, 0].min(),
                       margin + rng.uniform(0, room_y) - moved[:, 1].min()], np.float32)
    return cv2.getPerspectiveTransform(corners, (moved + offset).astype(np.float32))


def render_card_face(fields: CardFaceFields, rng: np.random.Generator, *,
                     frame_size: tuple[int, int] = FRAME_SIZE) -> np.ndarray:
    """Render one card-camera frame of ``fields``: an RGB uint8 array of shape (height, width, 3).

    Two calls with generators in the same state return identical frames. Calling twice with one
    generator gives two frames of the same card with fresh pose, glare and noise (the OCR gate's
    two-frame agreement is measured that way).
    """
    frame_w, frame_h = frame_size
    card = render_card(fields, rng)
    card_h, card_w = card.shape[:2]
    homography = _camera_homography(rng, card_w, card_h, frame_w, frame_h)
    warped = cv2.warpPerspective(card, homography, (frame_w, frame_h), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(_card_mask(card_w, card_h), homography, (frame_w, frame_h),
                               flags=cv2.INTER_LINEAR).astype(np.float32)[..., None] / 255.0
    frame = _background(rng, frame_w, frame_h) * (1 - mask) + warped.astype(np.float32) * mask

    # Uneven light: brightness, a linear gradient and a soft vignette, computed on a 1/4 grid.
    coarse_w, coarse_h = frame_w // 4, frame_h // 4
    yy, xx = np.mgrid[0:coarse_h, 0:coarse_w].astype(np.float32) * 4
    gx, gy = rng.uniform(-0.25, 0.25, 2)
    light = rng.uniform(0.75, 1.08) * (1 + gx * (xx / frame_w - 0.5) + gy * (yy / frame_h - 0.5))
    light *= 1 - rng.uniform(0.0, 0.25) * (((xx / frame_w - 0.5) ** 2 + (yy / frame_h - 0.5) ** 2) / 0.5)
    gain = _smooth_field(light, frame_w, frame_h)[..., None]
    frame *= gain

    # Glare: a bright specular blob on the card (moves between frames); a third of the time it sits on
    # one of the fields 照合番号B is read from, where it can wash out part of a digit.
    if rng.random() < 0.6:
        if rng.random() < 0.35:
            x, y, size = LAYOUT_MM[("birth", "expiry", "code")[int(rng.integers(3))]]
            spot = (_mm(x + rng.uniform(0, 30 if size < 3 else 6)), _mm(y + rng.uniform(0, size)))
        else:
            spot = (rng.uniform(0, card_w), rng.uniform(0, card_h))
        cx, cy = cv2.perspectiveTransform(np.array([[spot]], np.float32), homography)[0, 0]
        sx, sy = rng.uniform(8, 90, 2)
        blob = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2) * rng.uniform(60, 260)
        frame += _smooth_field(blob, frame_w, frame_h)[..., None] * mask

    frame = np.clip(frame, 0, 255).astype(np.uint8)
    sigma = rng.uniform(0.0, 2.0)
    if sigma > 0.3:
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    if rng.random() < 0.2:  # slight motion blur: a hand placing the card
        length = int(rng.integers(3, 8))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        frame = cv2.filter2D(frame, -1, kernel / max(kernel.sum(), 1e-6))
    noise = rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(rng.uniform(1.0, 10.0))
    noisy = frame.astype(np.float32) + noise
    frame = np.clip(noisy, 0, 255).astype(np.uint8)
    quality = int(rng.integers(35, 96))
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DeviceError("OpenCV could not JPEG-encode a synthetic card frame")
    return cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
