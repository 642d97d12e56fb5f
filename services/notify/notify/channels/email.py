"""Email over SMTP: multipart/alternative (text and HTML), STARTTLS and AUTH when configured.

SMTP_URL: smtp://[user:pass@]host[:port][?starttls=1] or smtps://[user:pass@]host[:port]."""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from . import ChannelDown, SendError


class SmtpSender:
    def __init__(self, url: str | None, mail_from: str, timeout: float = 10.0, ca_file: str | None = None):
        self.url = url
        self.mail_from = mail_from
        self.timeout = timeout
        self.ca_file = ca_file  # a private CA for the SMTP server's certificate; the system's otherwise

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()

    def build(self, to: str, subject: str, text: str, html: str, message_id: str) -> EmailMessage:
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

    def send(self, to: str, subject: str, text: str, html: str, message_id: str) -> None:
        if not self.url:
            raise ChannelDown("SMTP_URL is not configured")
        if "@" not in to or any(c in to for c in "\r\n"):
            raise SendError(f"not an email address: {to!r}", permanent=True)
        u = urlsplit(self.url)
        if u.scheme not in ("smtp", "smtps"):
            raise ChannelDown(f"SMTP_URL must be smtp:// or smtps://, not {u.scheme}://")
        q = parse_qs(u.query)
        starttls = q.get("starttls", ["0"])[0] in ("1", "true", "yes")
        host, port = u.hostname or "localhost", u.port or (465 if u.scheme == "smtps" else 25)
        msg = self.build(to, subject, text, html, message_id)
        try:
            if u.scheme == "smtps":
                client = smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=self._tls())
            else:
                client = smtplib.SMTP(host, port, timeout=self.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelDown(f"SMTP server {host}:{port} unreachable: {exc}") from None
        try:
            with client:
                if starttls:
                    client.starttls(context=self._tls())
                if u.username:
                    client.login(unquote(u.username), unquote(u.password or ""))
                client.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"recipient refused: {exc.recipients}", permanent=True) from None
        except ssl.SSLError as exc:
            raise ChannelDown(f"TLS with the SMTP server failed: {exc}") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise ChannelDown(f"SMTP authentication failed: {exc.smtp_code}") from None
        except smtplib.SMTPResponseException as exc:
            raise SendError(f"SMTP error {exc.smtp_code}: {exc.smtp_error!r}",
                            permanent=500 <= exc.smtp_code < 600 and exc.smtp_code not in (550, 552)) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"SMTP failed: {type(exc).__name__}: {exc}") from None

