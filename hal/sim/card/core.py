"""The virtual My Number card's APDU state machine, in a MicroPython-friendly subset.

Plain classes, bytes and dicts only: no dataclasses, no typing at run time, no f-strings in the
command path, and no host libraries. Everything the card keeps between taps (files, retry
counters) and everything a microcontroller would do in hardware (RSA signing, writing counters to
EEPROM) is given to :class:`CardCore` by its host (:mod:`hal.sim.card.virtual_card` on a PC).

Behaviour follows the facts in the project's card-protocol reference (SELECT by AID / by FID,
READ BINARY with short or extended Le, VERIFY with and without data, COMPUTE SIGNATURE, the status
words) and what third-party readers expect of a real card: OpenSC's ``jpki`` driver reads the first
four bytes of EF 000A to size it and asks VERIFY without data for the tries left; ``jpki/myna``
reads a 7-byte header first, then the rest in Le=00 chunks.
"""

SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_INCOMPATIBLE_FILE = 0x6981
SW_SECURITY_NOT_SATISFIED = 0x6982
SW_AUTH_BLOCKED = 0x6984
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_NO_CURRENT_EF = 0x6986
SW_WRONG_DATA = 0x6A80
SW_FILE_NOT_FOUND = 0x6A82
SW_WRONG_P1P2 = 0x6A86
SW_OFFSET_OUTSIDE = 0x6B00
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00

#: READ BINARY access rules: "free", or the FID (hex) of the PIN that must be verified first.
FREE = "free"

MAX_SIGN_INPUT = 245  # PKCS#1 v1.5 with a 2048-bit key leaves 256 - 11 bytes for the DigestInfo


def _sw_bytes(sw):
    return bytes(((sw >> 8) & 0xFF, sw & 0xFF))


class Pin:
    """One PIN (or 照合番号B) EF: its value and its retry counter."""

    def __init__(self, value, tries_left, max_tries):
        self.value = value
        self.tries_left = tries_left
        self.max_tries = max_tries


class Application:
    """One AP (DF selected by AID): its files, PINs, keys and who may read what.

    ``files`` maps FID (4 hex upper-case) to bytes; ``read_rules`` maps FID to :data:`FREE` or the
    FID of a PIN; ``pins`` maps FID to :class:`Pin`; ``keys`` maps key FID to
    ``(pin_fid or None, sign_callable)`` where ``sign_callable(digest_info) -> bytes`` does a
    PKCS#1 v1.5 private-key operation; ``internal_key`` signs a challenge without any PIN
    (the 券面 APs' card-genuineness key, ``80 2A 00 00``).
    """

    def __init__(self, aid, files, read_rules, pins, keys, internal_key=None, extended_apdu=True):
        self.aid = aid
        self.files = files
        self.read_rules = read_rules
        self.pins = pins
        self.keys = keys
        self.internal_key = internal_key
        self.extended_apdu = extended_apdu


class CardCore:
    """Answers command APDUs like a My Number card (or a phone's JPKI applet) would.

    ``on_counter_change(aid_hex, fid_hex, tries_left)`` is called *before* the answer to a VERIFY
    is returned, as a real card writes its counter to EEPROM before it answers: a card pulled right
    after a wrong try has still spent it.

    Quirks, for exercising a host's T=0 handling: ``get_response`` answers any response with data
    with ``61xx`` and serves it through GET RESPONSE; ``exact_le`` answers READ BINARY whose Le
    does not match what is left with ``6Cxx``.
    """

    def __init__(self, applications, on_counter_change=None, get_response=False, exact_le=False):
        self.applications = {}
        for app in applications:
            self.applications[bytes(app.aid)] = app
        self.on_counter_change = on_counter_change
        self.get_response = get_response
        self.exact_le = exact_le
        self.power_on()

    # ------------------------------------------------------------------ life cycle

    def power_on(self):
        """Reset: no AP or EF selected, every security state cleared (a new tap)."""
        self.current_app = None
        self.current_fid = None
        self.verified = {}
        self.pending = b""

    # ------------------------------------------------------------------ APDU entry

    def process(self, apdu):
        """Answer one command APDU (bytes) with response data + SW1 SW2 (bytes)."""
        parsed = parse_command(bytes(apdu))
        if parsed is None:
            return _sw_bytes(SW_WRONG_LENGTH)
        cla, ins, p1, p2, data, le, extended = parsed
        if ins == 0xC0 and cla == 0x00:
            return self._get_response(le)
        self.pending = b""
        if cla not in (0x00, 0x80):
            return _sw_bytes(SW_CLA_NOT_SUPPORTED)
        if ins == 0xA4 and cla == 0x00:
            data_out, sw = self._select(p1, p2, data)
        elif ins == 0xB0 and cla == 0x00:
            data_out, sw = self._read_binary(p1, p2, data, le, extended)
        elif ins == 0x20 and cla == 0x00:
            data_out, sw = self._verify(p1, p2, data)
        elif ins == 0x2A and cla == 0x80:
            data_out, sw = self._compute_signature(p1, p2, data)
        else:
            data_out, sw = b"", SW_INS_NOT_SUPPORTED
        if self.get_response and data_out and sw == SW_OK:
            self.pending = data_out
            return _sw_bytes(0x6100 | (len(data_out) & 0xFF))
        return data_out + _sw_bytes(sw)

    def _get_response(self, le):
        if not self.pending:
            return _sw_bytes(SW_CONDITIONS_NOT_SATISFIED)
        if le is None:
            le = 256
        out = self.pending[:le]
        self.pending = self.pending[le:]
        if self.pending:
            return out + _sw_bytes(0x6100 | (len(self.pending) & 0xFF))
        return out + _sw_bytes(SW_OK)

    # ------------------------------------------------------------------ commands

    def _select(self, p1, p2, data):
        if p2 not in (0x0C, 0x00):
            return b"", SW_WRONG_P1P2
        if p1 == 0x04:
            app = self.applications.get(data)
            if app is None:
                return b"", SW_FILE_NOT_FOUND
            if app is not self.current_app:
                # Security state belongs to the DF: leaving it forgets every verified PIN.
                self.verified = {}
            self.current_app = app
            self.current_fid = None
            return b"", SW_OK
        if p1 == 0x02:
            if len(data) != 2:
                return b"", SW_WRONG_LENGTH
            app = self.current_app
            if app is None:
                return b"", SW_FILE_NOT_FOUND
            fid = _hex(data)
            if fid in app.files or fid in app.pins or fid in app.keys:
                self.current_fid = fid
                return b"", SW_OK
            return b"", SW_FILE_NOT_FOUND
        return b"", SW_WRONG_P1P2

    def _read_binary(self, p1, p2, data, le, extended):
        if p1 & 0x80:
            return b"", SW_WRONG_P1P2  # short-EF addressing is not used by these APs
        if data:
            return b"", SW_WRONG_LENGTH
        app = self.current_app
        if app is None or self.current_fid is None:
            return b"", SW_NO_CURRENT_EF
        fid = self.current_fid
        if fid not in app.files:
            return b"", SW_INCOMPATIBLE_FILE
        if extended and not app.extended_apdu:
            return b"", SW_WRONG_LENGTH
        rule = app.read_rules.get(fid, FREE)
        if rule != FREE and not self.verified.get(rule):
            return b"", SW_SECURITY_NOT_SATISFIED
        content = app.files[fid]
        offset = (p1 << 8) | p2
        if offset >= len(content):
            return b"", SW_OFFSET_OUTSIDE
        if le is None:
            return b"", SW_WRONG_LENGTH
        left = len(content) - offset
        if self.exact_le and not extended and le > left:
            return b"", 0x6C00 | (left & 0xFF)
        return content[offset:offset + le], SW_OK

    def _verify(self, p1, p2, data):
        if p1 != 0x00 or p2 != 0x80:
            return b"", SW_WRONG_P1P2
        app = self.current_app
        if app is None or self.current_fid is None:
            return b"", SW_NO_CURRENT_EF
        pin = app.pins.get(self.current_fid)
        if pin is None:
            return b"", SW_INCOMPATIBLE_FILE
        if pin.tries_left <= 0:
            return b"", SW_AUTH_BLOCKED
        if not data:
            return b"", 0x63C0 | (pin.tries_left & 0x0F)
        if data == pin.value:
            if pin.tries_left != pin.max_tries:
                pin.tries_left = pin.max_tries
                self._counter_changed(app, self.current_fid, pin)
            self.verified[self.current_fid] = True
            return b"", SW_OK
        pin.tries_left -= 1
        self.verified[self.current_fid] = False
        self._counter_changed(app, self.current_fid, pin)
        return b"", 0x63C0 | (pin.tries_left & 0x0F)

    def _counter_changed(self, app, fid, pin):
        if self.on_counter_change is not None:
            self.on_counter_change(_hex(app.aid), fid, pin.tries_left)

    def _compute_signature(self, p1, p2, data):
        if p1 != 0x00:
            return b"", SW_WRONG_P1P2
        app = self.current_app
        if app is None:
            return b"", SW_CONDITIONS_NOT_SATISFIED
        if not data or len(data) > MAX_SIGN_INPUT:
            return b"", SW_WRONG_LENGTH
        if p2 == 0x00:
            # The 券面 APs prove the card is genuine by signing the terminal's challenge, no PIN.
            if app.internal_key is None:
                return b"", SW_CONDITIONS_NOT_SATISFIED
            return app.internal_key(data), SW_OK
        if p2 != 0x80:
            return b"", SW_WRONG_P1P2
        key = app.keys.get(self.current_fid) if self.current_fid is not None else None
        if key is None:
            return b"", SW_CONDITIONS_NOT_SATISFIED
        pin_fid, sign = key
        if pin_fid is not None and not self.verified.get(pin_fid):
            return b"", SW_SECURITY_NOT_SATISFIED
        if sign is None:
            return b"", SW_SECURITY_NOT_SATISFIED
        return sign(data), SW_OK


def parse_command(apdu):
    """Split a command APDU into ``(cla, ins, p1, p2, data, le, extended)``; None if malformed.

    ``le`` is None when absent, else 1..65536 (a zero Le byte means 256 short, 65536 extended).
    """
    n = len(apdu)
    if n < 4:
        return None
    cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
    if n == 4:
        return cla, ins, p1, p2, b"", None, False
    if n == 5:
        return cla, ins, p1, p2, b"", apdu[4] or 256, False
    if apdu[4] != 0:
        lc = apdu[4]
        if n == 5 + lc:
            return cla, ins, p1, p2, apdu[5:5 + lc], None, False
        if n == 6 + lc:
            return cla, ins, p1, p2, apdu[5:5 + lc], apdu[5 + lc] or 256, False
        return None
    # extended: a zero byte, then two-byte lengths
    if n == 7:
        le = (apdu[5] << 8) | apdu[6]
        return cla, ins, p1, p2, b"", le or 65536, True
    if n < 7:
        return None
    lc = (apdu[5] << 8) | apdu[6]
    if lc == 0:
        return None
    if n == 7 + lc:
        return cla, ins, p1, p2, apdu[7:7 + lc], None, True
    if n == 9 + lc:
        le = (apdu[7 + lc] << 8) | apdu[8 + lc]
        return cla, ins, p1, p2, apdu[7:7 + lc], le or 65536, True
    return None


def _hex(data):
    return "".join("%02X" % b for b in data)  # noqa: UP031 - MicroPython has no f-string debugging
