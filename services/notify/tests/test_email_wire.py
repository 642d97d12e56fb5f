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


def test_the_short_cut_for_plain_headers_writes_what_compat32_folds_them_to():
    """`_WirePolicy` writes a short one-line ASCII header as it is: byte for byte what compat32's
    folding gives, for random values on both sides of the short cut's limits (length, spaces,
    tabs, non-ASCII, line breaks)."""
    import random

    from notify.channels import email as channel

    stock = policy.compat32.clone(linesep="\r\n")
    rnd = random.Random(2026)
    alphabet = [chr(c) for c in range(0x20, 0x7f)] + [" ", " ", "\t", "é", "张", "\n", ";", "="]
    short_cut = 0
    for _ in range(20000):
        name = rnd.choice(["To", "Date", "Message-ID", "X-CRM-Delivery", "MIME-Version", "Content-Type", "Subject"])
        value = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 90)))
        if "\n" in value:  # (compat32 writes a line break through; the sender removes them first)
            continue
        if channel._one_plain_line(value) and len(name) + len(value) <= 76:
            short_cut += 1
        assert channel._WIRE.fold_binary(name, value) == stock.fold_binary(name, value), (name, value)
    assert short_cut > 2000  # the short cut was exercised, not only the fallback


def test_the_whole_message_is_the_same_bytes_as_with_plain_compat32(monkeypatch):
    from notify.channels import email as channel

    monkeypatch.setattr(channel, "_boundary", lambda: "=_crm_fixed")
    monkeypatch.setattr(channel, "formatdate", lambda localtime=False: "Fri, 04 Dec 2026 12:00:00 -0000")
    monkeypatch.setattr(channel, "make_msgid", lambda idstring, domain: f"<1.{idstring}@{domain}>")
    sender = SmtpSender("smtp://127.0.0.1:9", "销售团队 <noreply@crm.local>")
    ours, stock = channel._WIRE, policy.compat32.clone(linesep="\r\n")
    for subject in ("新线索：张三 (Acme 有限公司)", "New lead: Acme", "x" * 120):
        built = {}
        for name, wire in (("ours", ours), ("compat32", stock)):
            monkeypatch.setattr(channel, "_WIRE", wire)
            built[name] = sender.build_bytes("rep@example.com", subject, TEXT, HTML, "d:42")
        assert built["ours"] == built["compat32"], subject
