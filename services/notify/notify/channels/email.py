"""Email over SMTP: multipart/alternative (text and HTML), STARTTLS and AUTH when configured.

SMTP_URL: smtp://[user:pass@]host[:port][?starttls=1] or smtps://[user:pass@]host[:port]."""
from __future__ import annotations

import re
import smtplib
import ssl
import uuid
from email import policy
from email.generator import BytesGenerator
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from io import BytesIO
from urllib.parse import parse_qs, unquote, urlsplit

from . import ChannelDown, SendError


class SmtpSender:
    def __init__(self, url: str | None, mail_from: str, timeout: float = 10.0, ca_file: str | None = None):
        self.url = url
        self.mail_from = mail_from
        self.timeout = timeout
        self.ca_file = ca_file  # a private CA for the SMTP server's certificate; the system's otherwise
        self._from_name, self._from_addr = parseaddr(mail_from)

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()

    def build(self, to: str, subject: str, text: str, html: str, message_id: str) -> EmailMessage:
        """The message as `email`'s modern API builds it: for addresses that need SMTPUTF8."""
        msg = EmailMessage()
        msg["From"] = self.mail_from
        msg["To"] = to
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(idstring=message_id.replace(":", "."), domain="crm.local")
        msg["X-CRM-Delivery"] = message_id
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        return msg

    def build_bytes(self, to: str, subject: str, text: str, html: str, message_id: str) -> bytes | None:
        """The same message as wire bytes (CRLF), built with `email`'s compat32 API, which is about
        4x cheaper than the modern one (its header registry and folding cost ~3 ms a message, most
        of the dispatch job's CPU). None when an address is not ASCII: that one goes through `build`
        and smtplib's SMTPUTF8 handling. Bodies are base64 (7-bit clean); the non-ASCII display
        name and subject are RFC 2047 encoded words, as the modern API writes them."""
        name, addr = self._from_name, self._from_addr
        if not (addr.isascii() and to.isascii()):
            return None
        msg = MIMEMultipart("alternative", boundary=_boundary())
        msg["From"] = formataddr((name, addr), charset="utf-8") if name else addr
        msg["To"] = to
        subject = " ".join(subject.splitlines())  # compat32 would write a line break through as-is
        msg["Subject"] = Header(subject, "utf-8") if not subject.isascii() else subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(idstring=message_id.replace(":", "."), domain="crm.local")
        msg["X-CRM-Delivery"] = message_id
        msg.attach(MIMEText(_crlf(text), "plain", "utf-8"))
        msg.attach(MIMEText(_crlf(html), "html", "utf-8"))
        out = BytesIO()
        BytesGenerator(out, mangle_from_=False, policy=_WIRE).flatten(msg)
        return out.getvalue()

    def envelope_from(self) -> str:
        return self._from_addr or self.mail_from

    def send(self, to: str, subject: str, text: str, html: str, message_id: str) -> None:
        """One message on a connection of its own."""
        with self.session() as session:
            session.send(to, subject, text, html, message_id)

    def session(self) -> "SmtpSession":
        """One connection for several messages (the dispatch job's chunk): `with sender.session() as s`."""
        return SmtpSession(self)

    def _target(self):
        if not self.url:
            raise ChannelDown("SMTP_URL is not configured")
        u = urlsplit(self.url)
        if u.scheme not in ("smtp", "smtps"):
            raise ChannelDown(f"SMTP_URL must be smtp:// or smtps://, not {u.scheme}://")
        starttls = parse_qs(u.query).get("starttls", ["0"])[0] in ("1", "true", "yes")
        return u, starttls, u.hostname or "localhost", u.port or (465 if u.scheme == "smtps" else 25)

    def _open(self) -> smtplib.SMTP:
        u, starttls, host, port = self._target()
        try:
            if u.scheme == "smtps":
                client = smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=self._tls())
            else:
                client = smtplib.SMTP(host, port, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelDown(f"SMTP server {host}:{port} unreachable: {exc}") from None
        try:
            if starttls:
                client.starttls(context=self._tls())
            if u.username:
                client.login(unquote(u.username), unquote(u.password or ""))
        except (OSError, smtplib.SMTPException) as exc:
            _close(client)
            raise _error(exc) from None
        return client


class _WirePolicy(policy.Compat32):
    """compat32 with CRLF line breaks, and a short cut: a header whose value is one line of printable
    ASCII words with single spaces that fits in 78 characters with its name is written as it is.
    compat32 would wrap it in a `Header` and run its folding to the same bytes
    (services/notify/tests/test_email_wire.py compares the two on random values), about a fifth of the
    CPU per email (bench/notify.py; bench/TUNING.md item 27). Anything else (a non-ASCII subject, a long
    Content-Type with its boundary) is folded by compat32 as before."""

    def _fold(self, name, value, sanitize):
        if type(value) is str and len(name) + 2 + len(value) <= self.max_line_length and _one_plain_line(value):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


_one_plain_line = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*").fullmatch
_WIRE = _WirePolicy(linesep="\r\n")


def _boundary() -> str:
    # "=_" cannot occur in base64 or quoted-printable text, so the generator need not search the
    # parts for it (its own random boundary costs a regular expression compiled per message)
    return "=_crm_" + uuid.uuid4().hex


def _crlf(body: str) -> str:
    """Text in its canonical form before base64 (RFC 2045): CRLF line breaks, a final one."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    return (body if body.endswith("\n") else body + "\n").replace("\n", "\r\n")


def _error(exc: Exception) -> SendError:
    """What an SMTP failure means for the delivery (see `SendError` and `ChannelDown`)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return SendError(f"recipient refused: {exc.recipients}", permanent=True)
    if isinstance(exc, ssl.SSLError):
        return ChannelDown(f"TLS with the SMTP server failed: {exc}")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return ChannelDown(f"SMTP authentication failed: {exc.smtp_code}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return SendError(f"SMTP error {exc.smtp_code}: {exc.smtp_error!r}",
                         permanent=500 <= exc.smtp_code < 600 and exc.smtp_code not in (550, 552))
    return SendError(f"SMTP failed: {type(exc).__name__}: {exc}")


def _close(client) -> None:
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()


class SmtpSession:
    """Several messages over one SMTP connection, opened at the first message and closed at the end.

    A refused recipient (smtplib resets the transaction) leaves the connection in use for the next
    message. A server that drops a connection already used for earlier messages before it has taken
    this one (the connection is closed, or 421, before DATA: many servers cap the messages per
    connection or drop idle ones) gets this message once more on a new connection: nothing was
    accepted, so nothing is sent twice. A failure once DATA has started is not retried here (the
    server may have taken the message): the delivery is tried again later, as with one connection
    per message."""

    def __init__(self, sender: SmtpSender):
        self.sender = sender
        self.client: smtplib.SMTP | None = None
        self.in_data = False
        self.connections = 0  # opened so far (tests, bench)

    def __enter__(self) -> "SmtpSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            _close(client)

    def _connect(self) -> smtplib.SMTP:
        client = self.sender._open()
        data = client.data

        def marked_data(msg):  # smtplib's sendmail calls self.data: note that the message is on its way
            self.in_data = True
            return data(msg)

        client.data = marked_data
        self.connections += 1
        return client

    def send(self, to: str, subject: str, text: str, html: str, message_id: str) -> None:
        if self.client is None:
            self.sender._target()  # not configured or not SMTP: ChannelDown before anything else
        if "@" not in to or any(c in to for c in "\r\n"):
            raise SendError(f"not an email address: {to!r}", permanent=True)
        wire = self.sender.build_bytes(to, subject, text, html, message_id)
        msg = self.sender.build(to, subject, text, html, message_id) if wire is None else None
        while True:
            reused = self.client is not None
            if self.client is None:
                self.client = self._connect()
            self.in_data = False
            try:
                if wire is not None:
                    self.client.sendmail(self.sender.envelope_from(), [to], wire)
                else:
                    self.client.send_message(msg)
                return
            except smtplib.SMTPRecipientsRefused as exc:
                raise _error(exc) from None  # smtplib sent RSET: the connection goes on
            except (OSError, smtplib.SMTPException) as exc:
                dropped = isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError)) or (
                    isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code == 421)
                if isinstance(exc, smtplib.SMTPResponseException) and not dropped and not self.in_data:
                    raise _error(exc) from None  # refused sender or the like: smtplib sent RSET
                self.close()
                if dropped and reused and not self.in_data:
                    continue  # nothing was taken on the old connection: once more on a new one
                raise _error(exc) from None
