"""The email as it goes on the wire: built with `email`'s compat32 API (cheap) for ASCII addresses,
with the modern API and SMTPUTF8 for the others; either way a reader sees the same message."""
import email
from email import policy

from notify.channels.email import SmtpSender

TEXT = "您好 李四，\n\n新线索 张三 已分配给您。\n.\n一行以点开头\nFrom the start of a line\n"
HTML = "<p>您好 李四，</p><p>新线索 <b>张三</b></p>"


def parse(raw: bytes):
    return email.message_from_bytes(raw, policy=policy.default)


def test_the_wire_message_reads_back_as_the_modern_one():
    sender = SmtpSender("smtp://127.0.0.1:9", "销售团队 <noreply@crm.local>")
    raw = sender.build_bytes("rep@example.com", "新线索：张三 (Acme 有限公司)" * 3, TEXT, HTML, "d:42")
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    assert all(b < 0x80 for b in raw)  # 7-bit clean: no 8BITMIME needed
    wire, modern = parse(raw), parse(sender.build("rep@example.com", "新线索：张三 (Acme 有限公司)" * 3, TEXT, HTML,
                                                  "d:42").as_bytes(policy=policy.SMTP))
    for header in ("From", "To", "Subject", "X-CRM-Delivery"):
        assert str(wire[header]) == str(modern[header]), header
    assert wire["From"].addresses[0].display_name == "销售团队"
    assert wire["Message-ID"].endswith(".d.42@crm.local>") and wire["Date"]
    assert wire.get_content_type() == "multipart/alternative"
    assert {p.get_content_type(): p.get_content() for p in wire.iter_parts()} == {
        p.get_content_type(): p.get_content() for p in modern.iter_parts()}
    assert wire.get_body(("plain",)).get_content().replace("\r\n", "\n") == TEXT  # CRLF on the wire (RFC 2045)


def test_a_line_break_in_the_subject_cannot_add_a_header():
    sender = SmtpSender("smtp://127.0.0.1:9", "noreply@crm.local")
    for subject in ("Hello\r\nBcc: victim@example.com", "你好\nBcc: victim@example.com"):
        msg = parse(sender.build_bytes("rep@example.com", subject, "t", "<p>h</p>", "d:1"))
        assert msg["Bcc"] is None and "victim@example.com" in str(msg["Subject"])
        assert msg["From"] == "noreply@crm.local"


def test_a_non_ascii_address_falls_back_to_the_modern_api(smtp):
    """(smtplib then asks the server for SMTPUTF8, as before)"""
    sender = SmtpSender(smtp.url, "CRM <noreply@crm.local>")
    assert sender.build_bytes("李四@例子.中国", "s", "t", "h", "d:1") is None
    assert SmtpSender(smtp.url, "客服 <客服@例子.中国>").build_bytes("rep@example.com", "s", "t", "h", "d:1") is None


def test_ascii_and_non_ascii_recipients_both_arrive(smtp):
    sender = SmtpSender(smtp.url, "销售团队 <noreply@crm.local>")
    with sender.session() as s:
        s.send("rep@example.com", "新线索", TEXT, HTML, "d:1")
        s.send("rep2@example.com", "second", "plain", "<p>x</p>", "d:2")
    assert [to for to, _ in smtp.messages] == [["rep@example.com"], ["rep2@example.com"]]
    assert s.connections == 1
    first = smtp.messages[0][1]
    assert first["Subject"] == "新线索" and first.get_body(("plain",)).get_content().replace("\r\n", "\n") == TEXT
    assert first["From"].addresses[0].addr_spec == "noreply@crm.local"
