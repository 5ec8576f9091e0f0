"""How a link client proves who it talks to: TLS, the device certificate, and the broker's answer.

One set-up for both ends of the link, the kiosk (:mod:`firmware.link.mqtt`) and the reference
terminal (:mod:`terminal.app`):

- TLS is mandatory. ``[broker] ca_file`` is the CA that signed the broker's certificate (and only
  it is trusted: no system roots); ``cert_file`` + ``key_file`` are this device's certificate and
  key for mutual TLS (the production broker requires them, ``provisioning/broker_config.py``). The
  broker's certificate must name ``host`` (hostname checking stays on); TLS 1.2 at least.
- ``insecure_local = true`` allows a plain connection, and only to a broker on this machine: the
  embedded demo broker and the tests' private mosquitto. Any TLS setting given still means TLS.
- Every mistake a technician can make in those settings is one :class:`~firmware.errors.ConfigError`
  line, raised when the link is built (:func:`client_credentials`), naming the key and the fix: no
  TLS settings, a certificate without its key (or the reverse), a certificate without a CA, a file
  that cannot be read or holds no certificate/key, an encrypted key, a key that does not belong to
  its certificate, a password file without a user (or empty), and (kiosk) a certificate issued to
  another reader.
- A broker that will not talk to us over TLS (its certificate not from our CA, our certificate not
  from its CA, no certificate given) is not a config error we can see in advance: paho raises or
  logs it on its network thread and retries with backoff. :class:`ConnectTrouble` turns those
  texts into one staff-readable line, reported once per distinct cause.

Device names (certificate CN, which the broker uses as the username for its ACL with
``use_identity_as_username``): ``reader.{site}.{reader}`` for a kiosk, ``terminal.{site}`` for the
site's terminal (:func:`reader_identity`, :func:`terminal_identity`). Site and reader ids cannot
hold dots (:data:`firmware.config.Identifier`), so a name reads back one way only.

The crypto is the standard library's ``ssl`` (OpenSSL) and ``cryptography``'s parsers; nothing
here signs or verifies by hand.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from firmware.config import Broker
from firmware.errors import ConfigError

log = logging.getLogger(__name__)

_LOCAL_HOSTS = {"localhost", "localhost.localdomain"}
_MAX_PEM_BYTES = 1024 * 1024  # a PEM bundle larger than this is not a CA file, whatever it holds


def reader_identity(site: str, reader: str) -> str:
    """The certificate CN (and broker username) of kiosk ``site/reader``."""
    return f"reader.{site}.{reader}"


def terminal_identity(site: str) -> str:
    """The certificate CN (and broker username) of the terminal of ``site``."""
    return f"terminal.{site}"


def is_local_host(host: str) -> bool:
    """True for a loopback address or name: the only place a plain broker is allowed."""
    if host.lower() in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def uses_tls(broker: Broker) -> bool:
    """Whether ``[broker]`` asks for TLS (any of ca_file, cert_file, key_file is set)."""
    return any(getattr(broker, name) is not None for name in ("ca_file", "cert_file", "key_file"))


@dataclass(frozen=True)
class ClientCredentials:
    """What a paho client needs: a TLS context (None: plain, local only) and an optional user/password."""

    tls: ssl.SSLContext | None
    username: str | None = None
    password: str | None = None
    #: The device certificate's CN, if it has one (for logs: which identity we connect as).
    identity: str | None = None

    def apply(self, client) -> None:
        """Configure a paho client; call before ``connect``."""
        if self.tls is not None:
            client.tls_set_context(self.tls)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)


def _read(path: Path, key: str, limit: int = _MAX_PEM_BYTES) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"broker.{key}: cannot read {path} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise ConfigError(f"broker.{key}: {path} is larger than {limit} bytes; it is not a {key.removesuffix('_file')}"
                          " file") from None
    return data


def _certificates(path: Path, key: str) -> list[x509.Certificate]:
    data = _read(path, key)
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        raise ConfigError(f"broker.{key}: {path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")
    return certificates


def common_name(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def _check_pair(cert_file: Path, key_file: Path) -> x509.Certificate:
    """The device certificate, after checking that ``key_file`` is its unencrypted private key."""
    certificate = _certificates(cert_file, "cert_file")[0]
    data = _read(key_file, "key_file")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"broker.key_file: {key_file} is encrypted; the kiosk starts unattended, so the key "
                          "must be stored without a passphrase (protect it with file permissions)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"broker.key_file: {key_file} is not a PEM private key "
                          "(expected -----BEGIN PRIVATE KEY----- or similar)") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != certificate.public_key().public_bytes(serialization.Encoding.DER, public)):
        raise ConfigError(f"broker.key_file: {key_file} is not the key of broker.cert_file {cert_file} "
                          "(their public keys differ): give the key the certificate was issued for")
    return certificate


def _context(broker: Broker) -> tuple[ssl.SSLContext, str | None]:
    _certificates(broker.ca_file, "ca_file")
    identity = None
    if broker.cert_file is not None:
        identity = common_name(_check_pair(broker.cert_file, broker.key_file))
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(broker.ca_file))
    except ssl.SSLError as exc:
        raise ConfigError(f"broker.ca_file: {broker.ca_file} cannot be used as a CA ({exc.reason or exc})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if broker.cert_file is not None:
        try:
            context.load_cert_chain(str(broker.cert_file), str(broker.key_file))
        except ssl.SSLError as exc:  # what cryptography accepted and OpenSSL does not
            raise ConfigError(f"broker.cert_file/key_file: OpenSSL refuses {broker.cert_file} with "
                              f"{broker.key_file} ({exc.reason or exc})") from None
    return context, identity


def client_credentials(broker: Broker, *, expected_identity: str | None = None) -> ClientCredentials:
    """Check the ``[broker]`` settings and build what the client needs; raises ConfigError (one line).

    Args:
        broker: the ``[broker]`` section.
        expected_identity: the CN this client's certificate must carry (a kiosk passes
            :func:`reader_identity`), so a certificate issued to another reader is refused here
            rather than by the broker's ACL on every publish.
    """
    tls_given = uses_tls(broker)
    if (broker.cert_file is None) != (broker.key_file is None):
        given, missing = ("cert_file", "key_file") if broker.key_file is None else ("key_file", "cert_file")
        raise ConfigError(f"broker.{given} is set without broker.{missing}: mutual TLS needs both the device "
                          "certificate and its key")
    if broker.cert_file is not None and broker.ca_file is None:
        raise ConfigError("broker.cert_file/key_file need broker.ca_file (the CA of the broker's certificate): "
                          "without it the link cannot tell the clinic's broker from an impostor")
    if not tls_given:
        if not broker.insecure_local:
            raise ConfigError("broker: TLS is required: set broker.ca_file, broker.cert_file and broker.key_file "
                              "(the device certificate); only a broker on this machine may go without, with "
                              "broker.insecure_local = true")
        if not is_local_host(broker.host):
            raise ConfigError(f"broker.insecure_local allows a plain connection to this machine only "
                              f"(127.0.0.1, ::1, localhost), not to {broker.host!r}: set broker.ca_file, "
                              "broker.cert_file and broker.key_file")
    if broker.password_file is not None and broker.username is None:
        raise ConfigError("broker.password_file is set without broker.username: give the user it belongs to")
    password = None
    if broker.password_file is not None:
        try:
            password = _read(broker.password_file, "password_file", 4096).decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError(f"broker.password_file: {broker.password_file} is not UTF-8 text") from None
        if not password:
            raise ConfigError(f"broker.password_file: {broker.password_file} is empty")
    context = identity = None
    if tls_given:
        context, identity = _context(broker)
        if expected_identity is not None and broker.cert_file is not None and identity != expected_identity:
            raise ConfigError(f"broker.cert_file: {broker.cert_file} is issued to {identity!r}, but this device "
                              f"is {expected_identity!r}: the broker's ACL would refuse its topics; install the "
                              "certificate issued for this reader")
    return ClientCredentials(context, broker.username, password, identity)


# ---------------------------------------------------------------------------------------------- at connect


def classify_connect_error(text: str, broker: Broker, *, after_handshake: bool = False) -> tuple[str, str]:
    """(cause, one line for staff and logs) from an OpenSSL/socket error text (ours or paho's, never a
    peer's payload). The cause names the fix; the line says it.

    ``after_handshake``: the broker hung up after the TLS handshake and before its CONNACK. That is
    how a refused device certificate looks under TLS 1.3, whose alert is often lost to the reset.
    """
    upper = text.upper()
    where = f"{broker.host}:{broker.port}"
    if "CERTIFICATE_VERIFY_FAILED" in upper:
        if "MISMATCH" in upper:
            return "host-mismatch", (f"the broker's certificate is not for {broker.host} (broker.host must be a "
                                     f"name or address the broker's certificate lists): {_short(text)}")
        return "untrusted-broker", (f"the broker at {where} is not trusted: its certificate is not from "
                                    f"broker.ca_file (wrong CA file, or not the clinic's broker): {_short(text)}")
    if ("CERTIFICATE_REQUIRED" in upper or "PEER DID NOT RETURN A CERTIFICATE" in upper
            or (after_handshake and broker.cert_file is None)):
        return "certificate-required", (f"the broker at {where} requires a device certificate: set "
                                        "broker.cert_file and broker.key_file")
    if after_handshake or any(code in upper for code in ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN",
                                                          "DECRYPT_ERROR", "CERTIFICATE_EXPIRED",
                                                          "CERTIFICATE_REVOKED")):
        said = f": {_short(text)}" if text else ""
        return "certificate-refused", (f"the broker at {where} refused our device certificate (expired, revoked, "
                                       f"or not from the CA the broker trusts; its log says which){said}")
    if any(code in upper for code in ("WRONG_VERSION_NUMBER", "RECORD_LAYER", "UNEXPECTED_EOF", "EOF OCCURRED",
                                      "CONNECTION RESET")):
        return "no-tls-listener", (f"no TLS handshake with {where}: is broker.port the broker's TLS listener "
                                   f"(mosquitto's usual one is 8883)? {_short(text)}")
    return "other", f"cannot connect to {where}: {_short(text)}"


def explain_connect_error(text: str, broker: Broker, *, after_handshake: bool = False) -> str:
    """The line of :func:`classify_connect_error`."""
    return classify_connect_error(text, broker, after_handshake=after_handshake)[1]


def _short(text: str, limit: int = 160) -> str:
    return " ".join(text.split())[:limit]


class _ErrorLines(logging.Handler):
    def __init__(self, sink):
        super().__init__(logging.ERROR)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink(record.getMessage())


def watch_errors(client, sink) -> None:
    """Hand paho's ``MQTT_LOG_ERR`` lines to ``sink`` (on paho's thread: ``sink`` must only queue).

    A broker that refuses our certificate after a TLS 1.3 handshake shows only as such a line
    ("failed to receive on socket: … alert unknown ca"). paho's ``on_log`` would format every debug
    line of every packet to find it; a private logger at ERROR level formats nothing else.
    """
    errors = logging.Logger(f"{__name__}.paho", logging.ERROR)  # unregistered: no propagation, no sharing
    errors.addHandler(_ErrorLines(sink))
    client.enable_logger(errors)


def is_tls_error(error: BaseException | None) -> bool:
    return isinstance(error, (ssl.SSLError, ssl.CertificateError))


class ConnectTrouble:
    """Why the connection keeps failing, said once per cause, not once per paho retry.

    paho reports a refused TLS handshake by raising it in ``connect`` (our check of the broker's
    certificate: :meth:`connect_failed` gets the exception) or, when the broker refuses *our*
    certificate after a TLS 1.3 handshake, only as a disconnect before CONNACK, sometimes after an
    ``MQTT_LOG_ERR`` line (:func:`watch_errors` → :meth:`log_error` keeps it,
    :meth:`closed_before_connack` explains it; :meth:`answered` and :meth:`disconnected` tell a
    close before the CONNACK from any other). Each cause (:func:`classify_connect_error`) is
    reported once until a connection succeeds. Without TLS settings nothing here is a TLS problem: a
    broker that is down or restarting is only logged, once per cause. Not thread-safe: feed it from
    one thread (the kiosk's sender; the terminal's paho thread).
    """

    def __init__(self, broker: Broker):
        self.broker = broker
        self.tls = uses_tls(broker)
        self._last_error: str | None = None
        self._causes: set[str] = set()  # TLS causes reported since the last good connection
        self._reported: str | None = None  # the line last reported
        self._logged: str | None = None  # the plain failure last logged (not a problem: a broker may be down)
        self._answered = False  # the broker sent a CONNACK (success or refusal) on the current connection

    def log_error(self, text: str) -> None:
        """paho's own error line (``MQTT_LOG_ERR``, see :func:`watch_errors`)."""
        self._last_error = text

    def connect_failed(self, error: BaseException | None) -> str | None:
        """The connect attempt raised ``error``: the line to report if it is a new TLS problem, else None."""
        # A reset during the handshake is what a plain listener does to a TLS client.
        if is_tls_error(error) or (self.tls and isinstance(error, ConnectionResetError)):
            return self._new(*classify_connect_error(str(error), self.broker))
        self._log_plain(str(error) if error else "connection failed")
        return None

    def closed_before_connack(self) -> str | None:
        """The broker closed the connection before its CONNACK: the line to report if new, else None."""
        text, self._last_error = self._last_error, None
        if not self.tls:
            self._log_plain(text or "the broker closed the connection before accepting it")
            return None
        return self._new(*classify_connect_error(text or "", self.broker, after_handshake=True))

    def answered(self) -> None:
        """The broker sent its CONNACK (accepting or refusing) on the current connection."""
        self._answered = True

    def disconnected(self) -> str | None:
        """The connection closed: :meth:`closed_before_connack`'s line if it closed before any CONNACK."""
        answered, self._answered = self._answered, False
        return None if answered else self.closed_before_connack()

    def connected(self) -> None:
        self._last_error = self._reported = self._logged = None
        self._causes.clear()

    @property
    def reported(self) -> str | None:
        """The TLS problem line last reported and not yet cleared by a connection."""
        return self._reported

    def _new(self, cause: str, line: str) -> str | None:
        if cause in self._causes:
            log.debug("still: %s", line)
            return None
        self._causes.add(cause)
        self._reported = line
        log.error("%s", line)
        return line

    def _log_plain(self, text: str) -> None:
        line = f"cannot reach the broker at {self.broker.host}:{self.broker.port} ({_short(text)}); retrying"
        if line != self._logged:
            self._logged = line
            log.warning("%s", line)
