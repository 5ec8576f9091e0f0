"""Make realistic virtual card profiles from a throw-away test PKI.

``make_profile(DIR, kind=...)`` writes a profile directory (see :mod:`hal.sim.card.profile`):
JPKI AP with token info (EF 0006), a JPKI-shaped RSA-2048 user-authentication certificate (000A)
and its test CA (000B), a signature certificate (0001/0002) except on face-only cards, the keys
and PINs; on physical cards the 券面事項確認AP with the card face (EF 0002: FF20 with birth date,
sex, name/address images, the greyscale JPEG 2000 photo, expiry, security-code image), a CVC
(EF 0004) by the test issuer ``6000023`` and the card's genuineness key; and, when the OCR helper's
renderer ``hal.sim.card_face`` is installed, a photographed card face ``card_face.png`` whose
printed fields give the 照合番号B stored in card.toml.

Dates follow the real rules, so that a fresh profile is a card that works today: the card is issued
recently (within the last year, after the birth date) and expires on the holder's 10th birthday after
issue (5th if under 18 on the issue date); the JPKI certificates run from the issue date to the 5th
birthday after it, never past the card (see :func:`card_expiry`, :func:`certificate_expiry`).
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import importlib
import io
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from PIL import Image, ImageDraw, ImageFont

from hal.sim.card.cvc_build import build_cvc, tlv
from hal.sim.card.profile import (
    AID_JPKI,
    AID_KENMEN_KAKUNIN,
    CARD_TOML,
    TOKEN_NAMES,
    ProfileError,
    write_toml,
)
from hal.sim.card.synthetic_face import encode_jp2, to_photo_greyscale
from hal.sim.card.throwaway_pki import (
    CVC_TEST_ISSUER_ID,
    JST,
    ThrowAwayCa,
    end_of_day_jst,
    load_or_create_key,
    new_rsa_key,
    pem_private,
    pem_public,
    user_certificate,
)
from hal.sim.face_render import card_photo

log = logging.getLogger(__name__)

KINDS = tuple(TOKEN_NAMES)
CERT_STATES = ("valid", "expiring", "grace", "unusable", "not-yet-valid")
_ERA_STARTS = ((dt.date(2019, 5, 1)), (dt.date(1989, 1, 8)), (dt.date(1926, 12, 25)))
#: Age on the issue date from which a card runs 10 birthdays instead of 5 (18 since 2022-04-01).
ADULT_AGE = 18
#: A fresh card was issued at most this long ago (so certificates are far from expiry by default).
RECENT_ISSUE_DAYS = 365
_FONT = Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")


@dataclass(frozen=True)
class ProfileInfo:
    """What a test needs to know about a generated profile (its secrets are test data)."""

    directory: Path
    kind: str
    pin: str | None
    collation_b: str | None
    auth_not_after: dt.datetime
    cvc_issuer_reference: str
    cvc_issuer_public_pem: Path
    card_face_png: Path | None
    #: The card's (or, for a phone, the certificate's) issue date and the card's expiry, Japan time.
    issued: dt.date | None = None
    card_expiry: dt.date | None = None
    birth_date: dt.date | None = None
    #: The synthetic person on the card photo (None: a caller's ``face_image``, or no photo).
    face_seed: int | None = None


def era_year(day: dt.date) -> int:
    """Japanese era year of ``day`` (昭和 onwards); 照合番号B starts with it."""
    for start in _ERA_STARTS:
        if day >= start:
            return day.year - start.year + 1
    raise ProfileError(f"birth date {day} is before 昭和: not supported")


def _add_months(day: dt.date, months: int) -> dt.date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _birthday_in(birth: dt.date, year: int) -> dt.date:
    """The holder's birthday in ``year`` (29 February falls on 28 February in common years)."""
    try:
        return birth.replace(year=year)
    except ValueError:
        return dt.date(year, 2, 28)


def nth_birthday_after(birth: dt.date, issued: dt.date, n: int) -> dt.date:
    """The ``n``-th birthday after the issue date (a birthday on the issue day itself does not count)."""
    first = _birthday_in(birth, issued.year)
    year = issued.year + (1 if first <= issued else 0)
    return _birthday_in(birth, year + n - 1)


def age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def card_expiry(birth: dt.date, issued: dt.date) -> dt.date:
    """The card's last valid day: the 10th birthday after issue, the 5th if under 18 at issue.

    The rule for the My Number card (マイナンバーカードの有効期間, 番号法施行規則; J-LIS / 総務省
    マイナンバーカード総合サイト FAQ): 「発行の日から10回目の誕生日まで（発行の日において18歳未満の
    者は5回目の誕生日まで）」; the threshold was 20 before 2022-04-01. Only some foreign residents'
    cards end on another day (their period of stay); generated profiles never model those, the OCR
    renderer (``hal.sim.card_face.random_fields``) does.
    """
    return nth_birthday_after(birth, issued, 10 if age_on(birth, issued) >= ADULT_AGE else 5)


def certificate_expiry(birth: dt.date, issued: dt.date) -> dt.date:
    """The JPKI certificates' last valid day: the 5th birthday after issue, never after the card.

    J-LIS 公的個人認証サービス: 電子証明書の有効期間は「発行の日から5回目の誕生日まで」, and a
    certificate lapses with its card; the shared reference (seeds, 社会保障審議会医療保険部会
    第194回 資料2) shows the same 5-year span: 「有効期限（カード発行から5年後）」.
    """
    return min(nth_birthday_after(birth, issued, 5), card_expiry(birth, issued))


@dataclass(frozen=True)
class CardDates:
    """When the holder was born, when the card was issued and until when it and its certificates run."""

    birth: dt.date
    issued: dt.date
    card_expiry: dt.date
    auth_not_after: dt.date


def plan_dates(birth: dt.date, rng: np.random.Generator, today: dt.date,
               auth_not_after: dt.date | None = None) -> CardDates:
    """Choose the issue date (and, if needed, an older holder) for a card that obeys the rules.

    Without ``auth_not_after``: issued within the last :data:`RECENT_ISSUE_DAYS` days, after the
    birth date, certificates by :func:`certificate_expiry`; everything is valid ``today``.

    With it (a test wants an expiring, expired or not-yet-valid certificate): the certificate ends
    there, the card was issued five years before that (or yesterday, if that is in the future) and,
    so that the card outlives the certificate as a real one does, the holder is made an adult at issue.

    Raises:
        ProfileError: no card issued by today can outlive ``auth_not_after``.
    """
    yesterday = today - dt.timedelta(days=1)
    if auth_not_after is None:
        earliest = max(birth + dt.timedelta(days=1), today - dt.timedelta(days=RECENT_ISSUE_DAYS))
        if earliest > yesterday:
            raise ProfileError(f"birth date {birth} leaves no day to issue a card before {today}")
        issued = earliest + dt.timedelta(days=int(rng.integers(0, (yesterday - earliest).days + 1)))
        return CardDates(birth, issued, card_expiry(birth, issued), certificate_expiry(birth, issued))
    issued = min(_add_months(auth_not_after, -60), yesterday)
    if birth >= issued or age_on(birth, issued) < ADULT_AGE:
        birth = _birthday_in(birth, issued.year - 30)
    expiry = card_expiry(birth, issued)
    if auth_not_after > expiry:
        raise ProfileError(f"a certificate valid until {auth_not_after} would outlive any card issued by {today} "
                           f"(this one expires {expiry}); choose a date within 9 years of today")
    return CardDates(birth, issued, expiry, auth_not_after)


def _auth_not_after(state: str, today: dt.date) -> dt.date:
    """An expiry date (Japan time) that puts the certificate in ``state`` on ``today``."""
    if state == "valid":
        return _add_months(today, 40)
    if state == "expiring":
        return today + dt.timedelta(days=45)
    if state == "grace":
        return today - dt.timedelta(days=20)
    if state == "unusable":
        return _add_months(today, -6)
    if state == "not-yet-valid":
        return _add_months(today, 60)
    raise ProfileError(f"certificate state must be one of {', '.join(CERT_STATES)}, not {state!r}")


def make_profile(directory: str | Path, *, kind: str = "card", now: dt.datetime | None = None,
                 cert_state: str = "valid", auth_not_after: dt.date | None = None, pin: str = "1234",
                 sign_password: str = "ABC123", face_image: np.ndarray | None = None,
                 ca_dir: str | Path | None = None, seed: int | None = None, card_face: bool = True,
                 auth_pin_tries: int = 3, collation_b_tries: int = 10,
                 extended_apdu: bool = True, face_seed: int | None = None,
                 birth_date: dt.date | None = None) -> ProfileInfo:
    """Write a complete virtual card profile into ``directory`` (created; must be empty or new).

    Args:
        kind: ``card``, ``face-only``, ``android`` or ``iphone``.
        now: the clock the validity is computed against (default: now).
        cert_state: where the user-auth certificate stands on ``now`` (see :data:`CERT_STATES`),
            unless ``auth_not_after`` (a Japan-time date) is given. ``valid`` (the default) dates the
            certificate by the real rule from a recent issue date (see :func:`plan_dates`); the
            others put its expiry where the state needs it, inside the card's validity.
        face_image: an RGB/greyscale uint8 face for the card photo; default the synthetic person
            ``face_seed`` (:mod:`hal.sim.face_render`), recorded in card.toml ``[info] face_seed`` so
            that the simulated face camera can show the same person live
            (``hal.sim.face_scene.Person.holder``).
        face_seed: which synthetic person holds the card (default: drawn from ``seed``).
        birth_date: the holder's birth date (default: drawn); e.g. a child's, for the proxy path.
            A certificate state other than ``valid`` may still make the holder older (see
            :func:`plan_dates`).
        ca_dir: a folder caching the throw-away test CAs and CVC issuer key between profiles.
        seed: makes the card face and drawn photo reproducible.
    """
    if kind not in KINDS:
        raise ProfileError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    root = Path(directory)
    if (root / CARD_TOML).exists():
        raise ProfileError(f"{root} already holds a profile; choose an empty directory")
    now = now or dt.datetime.now(dt.UTC)
    today_jst = now.astimezone(JST).date()
    rng = np.random.default_rng(seed)
    if face_seed is None:
        face_seed = int(np.random.default_rng(None if seed is None else [seed, 0xFACE]).integers(0, 2**31))
    cache = Path(ca_dir) if ca_dir is not None else None
    auth_ca = ThrowAwayCa.load_or_create(cache, "user authentication", now)
    sign_ca = ThrowAwayCa.load_or_create(cache, "digital signature", now)
    physical = kind in ("card", "face-only")

    target = auth_not_after or (None if cert_state == "valid" else _auth_not_after(cert_state, today_jst))

    def plan(birth: dt.date) -> CardDates:
        return plan_dates(birth, rng, today_jst, target)

    fields = _card_face_fields(rng, today_jst, plan, birth_date) if physical else None
    dates = fields["dates"] if fields is not None else plan(birth_date or _random_birth(rng, today_jst))
    not_after_day = dates.auth_not_after
    issued_at = dt.datetime.combine(dates.issued, dt.time(), JST)
    not_before = issued_at if cert_state != "not-yet-valid" else now + dt.timedelta(days=30)
    auth_key = new_rsa_key()
    auth_cert = user_certificate(auth_ca, auth_key, purpose="user authentication", not_before=not_before,
                                 not_after=end_of_day_jst(not_after_day))
    der = serialization.Encoding.DER
    jpki: dict[str, bytes] = {
        "0006": TOKEN_NAMES[kind].ljust(32, b" "),
        "000A": auth_cert.public_bytes(der),
        "000B": auth_ca.certificate.public_bytes(der),
    }
    keys: dict[str, dict[str, bytes]] = {AID_JPKI: {"0017": pem_private(auth_key)}}
    pins: dict[str, dict] = {}
    if kind in ("card", "android"):
        pins[f"{AID_JPKI}/0018"] = {"name": "JPKI user-authentication PIN", "value": pin,
                                    "tries_left": auth_pin_tries, "max_tries": 3}
    if kind != "face-only":
        sign_key = new_rsa_key()
        sign_cert = user_certificate(sign_ca, sign_key, purpose="digital signature", not_before=not_before,
                                     not_after=end_of_day_jst(not_after_day))
        jpki["0001"] = sign_cert.public_bytes(der)
        jpki["0002"] = sign_ca.certificate.public_bytes(der)
        keys[AID_JPKI]["001A"] = pem_private(sign_key)
        pins[f"{AID_JPKI}/001B"] = {"name": "JPKI signature password", "value": sign_password,
                                    "tries_left": 5, "max_tries": 5}
    files = {AID_JPKI: jpki}

    issuer_key = load_or_create_key(cache, f"cvc_issuer_{CVC_TEST_ISSUER_ID}")
    issuer_dir = root / "issuer"
    issuer_pem = issuer_dir / f"{CVC_TEST_ISSUER_ID}.pem"
    collation_b = None
    card_face_png = None
    info: dict[str, object] = {"auth_not_after_jst": not_after_day.isoformat(),
                               "issued": dates.issued.isoformat(),
                               "generated_at": now.isoformat(timespec="seconds")}
    if fields is not None:
        collation_b = fields["collation_b"]
        card_key = new_rsa_key()
        holder = secrets.token_hex(8).upper()
        files[AID_KENMEN_KAKUNIN] = {
            "0002": _kenmen_ef0002(fields, face_image, face_seed, rng, issuer_key),
            "0004": build_cvc(issuer_key=issuer_key, issuer_reference=CVC_TEST_ISSUER_ID,
                              card_public_key=card_key.public_key(), holder_reference=holder,
                              effective=dates.issued, expiry=fields["expiry"]),
        }
        keys[AID_KENMEN_KAKUNIN] = {"internal": pem_private(card_key)}
        pins[f"{AID_KENMEN_KAKUNIN}/0012"] = {"name": "照合番号B", "value": collation_b,
                                              "tries_left": collation_b_tries, "max_tries": 10}
        info.update(birth_date=fields["birth"].isoformat(), card_expiry=fields["expiry"].isoformat())
        if face_image is None:
            info["face_seed"] = face_seed
        if card_face and fields.get("render") is not None:
            card_face_png = root / "card_face.png"
        elif card_face:
            log.info("hal.sim.card_face is not installed: profile %s has no card-face image", root)

    # Write everything only now, so a failure above leaves no half profile behind.
    root.mkdir(parents=True, exist_ok=True)
    for aid, efs in files.items():
        (root / "ef" / aid).mkdir(parents=True, exist_ok=True)
        for fid, content in efs.items():
            (root / "ef" / aid / f"{fid}.bin").write_bytes(content)
    for aid, pems in keys.items():
        (root / "keys" / aid).mkdir(parents=True, exist_ok=True)
        for fid, pem in pems.items():
            (root / "keys" / aid / f"{fid}.pem").write_bytes(pem)
    issuer_dir.mkdir(parents=True, exist_ok=True)
    issuer_pem.write_bytes(pem_public(issuer_key.public_key()))
    (root / "auth_ca.pem").write_bytes(auth_ca.certificate.public_bytes(serialization.Encoding.PEM))
    if card_face_png is not None:
        frame = fields["render"](rng)
        Image.fromarray(frame).save(card_face_png, compress_level=1)  # test data: speed over size
    write_toml(root / CARD_TOML, {"kind": kind, "extended_apdu": extended_apdu,
                                  "quirks": {"get_response": False, "exact_le": False},
                                  "pin": pins, "info": info})
    return ProfileInfo(root, kind, pin if kind in ("card", "android") else None, collation_b,
                       end_of_day_jst(not_after_day), CVC_TEST_ISSUER_ID, issuer_pem, card_face_png,
                       issued=dates.issued, card_expiry=dates.card_expiry if physical else None,
                       birth_date=dates.birth if physical else None,
                       face_seed=face_seed if physical and face_image is None else None)


def _random_birth(rng: np.random.Generator, today: dt.date) -> dt.date:
    """A holder born 1960–2004 (used where no card face draws one: phones, no renderer)."""
    return dt.date(1960, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 45)))


def _card_face_fields(rng: np.random.Generator, today: dt.date, plan, birth: dt.date | None = None) -> dict:
    """Card-face items — from ``hal.sim.card_face`` if present — with dates from ``plan(birth)``.

    The renderer draws its own expiry from an issue date anywhere since 2016 (right for OCR frames,
    where validity does not matter, but often expired today); a profile must be a usable card, so
    its dates are replaced by :func:`plan_dates`'s before 照合番号B and the image are made from them.
    """
    try:
        card_face = importlib.import_module("hal.sim.card_face")
    except ImportError:
        card_face = None
    if card_face is not None and hasattr(card_face, "random_fields"):
        drawn = card_face.random_fields(rng, today=today)
        dates = plan(birth or drawn.birth_date)
        face = dataclasses.replace(drawn, birth_date=dates.birth, expiry_date=dates.card_expiry)
        return {"birth": face.birth_date, "expiry": face.expiry_date, "code": face.security_code,
                "sex": "1" if face.sex == "男" else "2", "name": face.name, "address": "".join(face.address),
                "collation_b": face.collation_b, "dates": dates,
                "render": lambda r: card_face.render_card_face(face, r)}
    dates = plan(birth or _random_birth(rng, today))
    birth, expiry = dates.birth, dates.card_expiry
    code = f"{int(rng.integers(0, 10000)):04d}"
    collation_b = f"{era_year(birth):02d}{birth:%m%d}{expiry.year:04d}{code}"
    return {"birth": birth, "expiry": expiry, "code": code, "sex": "2", "name": "番号 花子",
            "address": "東京都千代田区霞が関二丁目１番２号", "collation_b": collation_b, "dates": dates,
            "render": None}


def _text_png(text: str, width: int = 480, height: int = 40) -> bytes:
    """A 1-bit PNG of a line of text, like the card's name/address/security-code images."""
    image = Image.new("1", (width, height), 1)
    font = ImageFont.truetype(str(_FONT), 28) if _FONT.is_file() else ImageFont.load_default()
    ImageDraw.Draw(image).text((4, 4), text, font=font, fill=0)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _kenmen_ef0002(fields: dict, face_image: np.ndarray | None, face_seed: int, rng: np.random.Generator,
                   issuer_key) -> bytes:
    """EF 0002 of the 券面事項確認AP: one FF20 TLV holding the card face's items."""
    face = to_photo_greyscale(face_image) if face_image is not None else card_photo(face_seed)
    photo = encode_jp2(face)
    face[...] = 0
    items = [
        (0xDF22, fields["birth"].strftime("%Y%m%d").encode("ascii")),
        (0xDF23, fields["sex"].encode("ascii")),
        (0xDF24, secrets.token_bytes(16)),
        (0xDF25, _text_png(fields["name"])),
        (0xDF26, _text_png(fields["address"], width=720)),
        (0xDF27, photo),
        (0xDF29, fields["expiry"].strftime("%Y%m%d").encode("ascii")),
        (0xDF2A, _text_png(fields["code"], width=120)),
    ]
    signed = b"".join(tlv(tag, value) for tag, value in items)
    signature = issuer_key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    body = signed + tlv(0xDF28, signature)
    # DF21: where each item starts inside the FF20 value, two bytes each (our layout; see notes).
    offsets, position = [], 0
    for tag, value in items:
        offsets.append(position.to_bytes(2, "big"))
        position += len(tlv(tag, value))
    return tlv(0xFF20, tlv(0xDF21, b"".join(offsets)) + body)
