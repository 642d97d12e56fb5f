"""Each channel with a real message arriving: SMTP server, HTTP endpoint with the signature
verified, the SMS file sink, the inbox. Exactly once under redelivery; retry after an outage."""
import base64
import hashlib
import hmac
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from notify import handlers, models
from notify.channels.webhook import verify
from notify.domain.rules import utc

LEAD = {"lead_id": "L1", "owner_id": "u1", "name": "张三", "company": "ACME", "source": "web", "reason": "auto"}


def test_lead_assigned_reaches_inbox_and_email_once_whatever_the_redeliveries(make_env, smtp, database_url):
    env = make_env(database_url, SMTP_URL=smtp.url)
    env.recipient("u1", email="u1@example.com", language="zh-CN")
    e = env.publish("lead.assigned", LEAD)
    # the same event delivered again (the bus redelivers), and the handler run again directly as
    # if the inbox record were lost: the unique (event id, recipient, channel) holds
    env.deliver(e)
    env.deliver(e, attempts=1)
    with env.rt.uow() as uow:
        handlers.handle(uow, e, dict(LEAD))
        uow.commit()
    rows = env.deliveries(event_id=e.id)
    assert sorted((r.recipient, r.channel) for r in rows) == [("u1", "email"), ("u1", "inbox")]
    env.send_due()
    env.send_due()
    assert len(smtp.messages) == 1
    to, msg = smtp.messages[0]
    assert to == ["u1@example.com"] and "张三" in msg["Subject"]
    assert msg.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    assert "张三" in parts["text/plain"] and "<p>" in parts["text/html"] and "张三" in parts["text/html"]
    inbox = env.client.get("/v1/inbox", headers=env.headers("u1")).json
    assert len(inbox["items"]) == 1 and inbox["unread"] == 1
    item = inbox["items"][0]
    assert item["event_type"] == "lead.assigned" and item["refs"]["lead_id"] == "L1" and "张三" in item["title"]
    assert all(r.status == "sent" and r.attempts == 1 for r in env.deliveries(event_id=e.id))


def test_a_channel_that_is_down_does_not_starve_the_inbox(make_env):
    """SMTP unreachable and far more pending emails than one claim holds: every in-app message
    still goes out in one dispatch (the emails wait for their retry instead of filling each claim)."""
    env = make_env(SMTP_URL="smtp://127.0.0.1:9", NOTIFY_DISPATCH_BATCH="10")
    env.recipient("u1")
    events = [env.publish("lead.assigned", dict(LEAD, lead_id=f"L{i}")) for i in range(60)]
    env.send_due()
    inbox = env.deliveries(channel="inbox")
    assert len(inbox) == 60 and {r.status for r in inbox} == {"sent"}
    emails = env.deliveries(channel="email")
    assert len(emails) == 60 and {r.status for r in emails} == {"pending"}
    # one email per claim found the server down (a try); the others waited without using one
    assert 0 < sum(r.attempts for r in emails) <= 60 // 10 * 2
    assert all(r.due_at.replace(tzinfo=None) > env.clock.now().replace(tzinfo=None) for r in emails)
    assert len(events) == 60


def test_html_part_escapes_payload_values(make_env, smtp):
    env = make_env(SMTP_URL=smtp.url)
    env.recipient("u1", language="en")
    env.publish("lead.assigned", dict(LEAD, name="<script>alert(1)</script>"))
    env.send_due()
    _, msg = smtp.messages[0]
    parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
    assert "&lt;script&gt;" in parts["text/html"] and "<script>" not in parts["text/html"]
    assert "<script>alert(1)</script>" in parts["text/plain"]


def test_email_retries_after_the_smtp_server_was_down_and_other_channels_are_not_blocked(make_env, smtp):
    env = make_env(SMTP_URL=smtp.url)
    env.recipient("u1")
    smtp.stop()  # outage
    e = env.publish("lead.assigned", LEAD)
    env.send_due()
    email_row = env.deliveries(event_id=e.id, channel="email")[0]
    assert email_row.status == "pending" and email_row.attempts == 1 and "unreachable" in email_row.last_error
    # the inbox message went through regardless
    assert env.deliveries(event_id=e.id, channel="inbox")[0].status == "sent"
    # not due yet: nothing is tried
    env.send_due()
    assert env.deliveries(event_id=e.id, channel="email")[0].attempts == 1
    smtp.start()  # the server is back
    env.clock.advance(seconds=61)
    env.send_due()
    row = env.deliveries(event_id=e.id, channel="email")[0]
    assert row.status == "sent" and row.attempts == 2
    assert len(smtp.messages) == 1
    log = env.client.get(f"/v1/deliveries?event_id={e.id}&channel=email", headers=env.admin()).json
    assert [t["ok"] for t in log[0]["tries"]] == [False, True] and log[0]["attempts"] == 2


def test_sms_goes_to_the_file_sink_and_long_texts_are_split(env):
    env.recipient("sup1", mobile="+8613800000001", language="zh-CN")
    payload = {"ticket_id": "T1", "customer_id": "C1", "type": "incident", "priority": "P1", "queue": "support",
               "target": "resolution", "due_at": "2026-03-10T01:00:00+00:00", "supervisor_id": "sup1",
               "subject": "服务中断" * 30}
    env.publish("ticket.sla_breached", payload)
    env.send_due()
    texts = env.sms()
    assert texts and all(t["to"] == "+8613800000001" for t in texts)
    assert "T1" in texts[0]["text"]
    row = env.deliveries(channel="sms")[0]
    assert row.status == "sent" and row.critical


def test_quiet_hours_hold_an_sms_until_morning(env):
    env.recipient("u1", mobile="+8613800000002", timezone="Asia/Shanghai")
    # 23:30 in Shanghai
    env.clock.set(env.clock.now().replace(hour=15, minute=30))
    env.client.post("/v1/subscriptions", headers=env.admin(), json={
        "event_type": "contract.expiring", "recipient_kind": "field", "recipient_value": "owner_id", "channels": ["sms"]})
    e = env.publish("contract.expiring", {"contract_id": "K1", "customer_id": "C1", "owner_id": "u1",
                                          "end_date": "2026-04-01"})
    env.send_due()
    assert env.sms() == []
    row = env.deliveries(event_id=e.id, channel="sms")[0]
    assert row.status == "pending" and "quiet hours" in row.note
    assert utc(row.due_at).isoformat() == "2026-03-11T00:00:00+00:00"  # 08:00 in Shanghai
    env.clock.advance(hours=8)  # 07:30 local: still quiet
    env.send_due()
    assert env.sms() == []
    env.clock.advance(minutes=30)  # 08:00 local
    env.send_due()
    assert len(env.sms()) == 1 and "K1" in env.sms()[0]["text"]


def test_signed_webhook_arrives_with_a_valid_signature(make_env, receiver):
    env = make_env(NOTIFY_WEBHOOK_ALLOW_PRIVATE="1")
    secret = "s3cret-s3cret-s3cret"
    r = env.client.post("/v1/webhooks", headers=env.headers("m1", ("sales_manager",)),
                        json={"url": receiver.url, "event_types": ["lead.created"], "secret": secret})
    assert r.status_code == 201, r.json
    e = env.publish("lead.created", {"lead_id": "L9", "status": "new", "name": "Pool lead"})
    env.send_due()
    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    h = req["headers"]
    assert verify(secret, h["X-CRM-Timestamp"], req["body"], h["X-CRM-Signature"])
    expected = "sha256=" + hmac.new(secret.encode(), h["X-CRM-Timestamp"].encode() + b"." + req["body"],
                                    hashlib.sha256).hexdigest()
    assert h["X-CRM-Signature"] == expected
    assert abs(int(h["X-CRM-Timestamp"]) - time.time()) < 60
    assert not verify(secret, str(int(time.time()) - 3600), req["body"], h["X-CRM-Signature"])  # replay refused
    body = json.loads(req["body"])
    assert body["id"] == e.id and body["type"] == "lead.created" and body["payload"]["lead_id"] == "L9"
    assert h["X-CRM-Event"] == "lead.created" and h["X-CRM-Delivery"]


def test_webhook_retries_with_backoff_then_is_disabled_and_its_owner_told(make_env, receiver):
    env = make_env(NOTIFY_WEBHOOK_ALLOW_PRIVATE="1", NOTIFY_RETRY_MAX_ATTEMPTS="3")
    env.recipient("m1")
    hook = env.client.post("/v1/webhooks", headers=env.headers("m1", ("sales_manager",)),
                           json={"url": receiver.url, "event_types": ["*"], "secret": "0123456789abcdef"}).json
    receiver.statuses = [500, 503, 500]
    e = env.publish("lead.created", {"lead_id": "L1", "status": "new"})
    env.send_due()
    row = env.deliveries(event_id=e.id, recipient=f"webhook:{hook['id']}")[0]
    assert row.status == "pending" and row.attempts == 1
    first_retry = row.due_at
    env.clock.advance(seconds=60)
    env.send_due()
    row = env.deliveries(event_id=e.id, recipient=f"webhook:{hook['id']}")[0]
    assert row.attempts == 2 and (row.due_at - first_retry).total_seconds() >= 119  # doubled
    env.clock.advance(seconds=120)
    env.send_due()
    row = env.deliveries(event_id=e.id, recipient=f"webhook:{hook['id']}")[0]
    assert row.status == "failed" and row.attempts == 3 and "500" in row.last_error
    assert len(receiver.requests) == 3
    h = env.client.get(f"/v1/webhooks/{hook['id']}", headers=env.headers("m1", ("sales_manager",))).json
    assert h["enabled"] is False and h["disabled_reason"]
    env.send_due()
    notice = env.client.get("/v1/inbox", headers=env.headers("m1", ("sales_manager",))).json["items"]
    assert notice and notice[0]["event_type"] == "notice.webhook_disabled"
    # disabled: later events are not planned for it
    env.publish("lead.created", {"lead_id": "L2", "status": "new"})
    assert not env.deliveries(recipient=f"webhook:{hook['id']}", status="pending")
    # its owner re-enables it
    r = env.client.post(f"/v1/webhooks/{hook['id']}/enable", headers=env.headers("m1", ("sales_manager",)))
    assert r.json["enabled"] is True


def test_webhook_retry_then_success(make_env, receiver):
    env = make_env(NOTIFY_WEBHOOK_ALLOW_PRIVATE="1")
    hook = env.client.post("/v1/webhooks", headers=env.admin(),
                           json={"url": receiver.url, "event_types": ["lead.created"],
                                 "secret": "0123456789abcdef"}).json
    receiver.statuses = [502]
    e = env.publish("lead.created", {"lead_id": "L1", "status": "new"})
    env.send_due()
    env.clock.advance(minutes=1)
    env.send_due()
    row = env.deliveries(event_id=e.id, recipient=f"webhook:{hook['id']}")[0]
    assert row.status == "sent" and row.attempts == 2 and len(receiver.requests) == 2
    # the delivery id is the same on each try: receivers can dedupe on it
    assert receiver.requests[0]["headers"]["X-CRM-Delivery"] == receiver.requests[1]["headers"]["X-CRM-Delivery"]


def test_ssrf_refused_without_the_explicit_setting(env, receiver):
    for url in (receiver.url, "http://localhost:8080/x", "http://10.0.0.8/x", "http://169.254.169.254/latest",
                "http://[::1]/x", "ftp://example.com/x", "file:///etc/passwd"):
        r = env.client.post("/v1/webhooks", headers=env.admin(),
                            json={"url": url, "event_types": ["lead.created"], "secret": "0123456789abcdef"})
        assert r.status_code == 422, (url, r.json)
        assert "url" in r.json["errors"]
    # a webhook that got in (e.g. its DNS changed afterwards) is refused at send time too
    with env.rt.uow() as uow:
        uow.session.execute(models.webhooks.insert().values(
            owner_id="admin1", kind="webhook", url=receiver.url, secret="0123456789abcdef", event_types=["*"],
            language="en", enabled=True, consecutive_failures=0, created_at=env.clock.now()))
        uow.commit()
    e = env.publish("lead.created", {"lead_id": "L1", "status": "new"})
    env.send_due()
    row = env.deliveries(event_id=e.id, channel="webhook")[0]
    assert row.status == "failed" and "private" in row.last_error and receiver.requests == []


def test_robots_in_their_own_format_and_signature(make_env, receiver):
    env = make_env(NOTIFY_WEBHOOK_ALLOW_PRIVATE="1")
    secret = "SEC-robot-secret"
    for kind in ("wecom", "dingtalk", "feishu"):
        r = env.client.post("/v1/webhooks", headers=env.admin(), json={
            "url": receiver.url + f"?kind={kind}", "event_types": ["ticket.sla_breached"], "secret": secret,
            "kind": kind, "language": "en"})
        assert r.status_code == 201, r.json
    env.publish("ticket.sla_breached", {"ticket_id": "T7", "customer_id": "C1", "type": "incident", "priority": "P1",
                                        "queue": "support", "target": "resolution",
                                        "due_at": "2026-03-10T01:00:00+00:00"})
    env.send_due()
    got = {parse_qs(urlsplit(r["path"]).query)["kind"][0]: r for r in receiver.requests}
    assert set(got) == {"wecom", "dingtalk", "feishu"}
    wecom = json.loads(got["wecom"]["body"])
    assert wecom["msgtype"] == "markdown" and "T7" in wecom["markdown"]["content"]
    ding = got["dingtalk"]
    q = parse_qs(urlsplit(ding["path"]).query)
    mac = hmac.new(secret.encode(), f"{q['timestamp'][0]}\n{secret}".encode(), hashlib.sha256).digest()
    assert q["sign"][0] == base64.b64encode(mac).decode()
    assert json.loads(ding["body"])["markdown"]["title"].startswith("SLA breached")
    fei = json.loads(got["feishu"]["body"])
    mac = hmac.new(f"{fei['timestamp']}\n{secret}".encode(), b"", hashlib.sha256).digest()
    assert fei["sign"] == base64.b64encode(mac).decode() and "T7" in fei["content"]["text"]


def test_robot_error_code_is_a_failure(make_env, receiver):
    env = make_env(NOTIFY_WEBHOOK_ALLOW_PRIVATE="1")
    receiver.body = b'{"errcode":310000,"errmsg":"sign not match"}'
    env.client.post("/v1/webhooks", headers=env.admin(), json={
        "url": receiver.url, "event_types": ["lead.created"], "secret": "x", "kind": "dingtalk"})
    e = env.publish("lead.created", {"lead_id": "L1", "status": "new"})
    env.send_due()
    row = env.deliveries(event_id=e.id, channel="dingtalk")[0]
    assert row.status == "pending" and "310000" in row.last_error


def test_one_failing_channel_never_blocks_the_queue(env):
    """No SMTP configured at all: the consumer acknowledges, the inbox and SMS still go."""
    env.recipient("sup1", mobile="+8613800000003")
    e = env.publish("ticket.sla_breached", {"ticket_id": "T1", "customer_id": "C1", "type": "incident",
                                            "priority": "P1", "queue": "q", "target": "resolution",
                                            "due_at": "2026-03-10T01:00:00+00:00", "supervisor_id": "sup1"})
    env.send_due()
    status = {r.channel: r.status for r in env.deliveries(event_id=e.id, recipient="sup1")}
    assert status == {"inbox": "sent", "sms": "sent", "email": "pending"}
    with env.rt.engine.connect() as c:
        assert c.execute(select(models.delivery_attempts.c.error).where(
            models.delivery_attempts.c.ok.is_(False))).scalar_one().startswith("SMTP_URL")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_auth_credentials_from_the_url(make_env):
    import socket
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    seen, logins = [], []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            seen.append(envelope)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"mailer" and auth_data.password == b"p@ss"
        logins.append(ok)
        return AuthResult(success=ok)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator,
                     auth_required=True, auth_require_tls=False)
    ctl.start()
    try:
        env = make_env(SMTP_URL=f"smtp://mailer:p%40ss@127.0.0.1:{port}")
        env.recipient("u1")
        env.publish("lead.assigned", LEAD)
        env.send_due()
    finally:
        ctl.stop()
    assert len(seen) == 1 and logins == [True] and seen[0].rcpt_tos == ["u1@example.com"]
    assert env.deliveries(channel="email")[0].status == "sent"


def test_sms_http_provider_gets_a_signed_request(make_env, receiver):
    env = make_env(SMS_URL=receiver.url, SMS_KEY="acct-1", SMS_SECRET="sms-secret")
    env.recipient("sup1", mobile="+8613800000004")
    env.publish("ticket.sla_breached", {"ticket_id": "T1", "customer_id": "C1", "type": "incident",
                                        "priority": "P1", "queue": "q", "target": "resolution",
                                        "due_at": "2026-03-10T01:00:00+00:00", "supervisor_id": "sup1"})
    env.send_due()
    assert len(receiver.requests) == 1
    req = receiver.requests[0]
    h = req["headers"]
    body = json.loads(req["body"])
    assert body["to"] == "+8613800000004" and "T1" in body["text"] and h["X-SMS-Key"] == "acct-1"
    assert h["X-SMS-Signature"] == hmac.new(b"sms-secret", h["X-SMS-Timestamp"].encode() + b"." + req["body"],
                                            hashlib.sha256).hexdigest()


def test_a_team_robot_hears_only_of_its_teams_pool_leads(make_env, receiver):
    env = make_env(NOTIFY_WEBHOOK_ALLOW_PRIVATE="1")
    r = env.client.post("/v1/webhooks", headers=env.headers("m1", ("sales_manager",)), json={
        "url": receiver.url, "event_types": ["lead.created"], "kind": "wecom",
        "condition": {"owner_id": {"present": False}, "team_id": {"eq": "east"}}})
    assert r.status_code == 201, r.json
    bad = env.client.post("/v1/webhooks", headers=env.admin(), json={
        "url": receiver.url, "event_types": ["lead.created"], "kind": "wecom", "condition": {"x": {"like": 1}}})
    assert bad.status_code == 422 and "condition" in bad.json["errors"]
    env.publish("lead.created", {"lead_id": "L1", "status": "new", "team_id": "east", "name": "pool east"})
    env.publish("lead.created", {"lead_id": "L2", "status": "new", "team_id": "west", "name": "pool west"})
    env.publish("lead.created", {"lead_id": "L3", "status": "new", "team_id": "east", "owner_id": "u1"})
    env.send_due()
    assert len(receiver.requests) == 1 and "pool east" in json.loads(receiver.requests[0]["body"])["markdown"]["content"]


def _ca_and_server_cert(tmp_path):
    import datetime as dt
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    return tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"


def test_smtp_starttls_then_auth(make_env, tmp_path):
    """The server requires STARTTLS before AUTH; the client verifies its certificate against SMTP_CA_FILE."""
    import socket
    import ssl
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    ca, cert, key = _ca_and_server_cert(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    seen, tls_seen = [], []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            tls_seen.append(session.ssl is not None)
            seen.append(envelope)
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True,
                     authenticator=lambda *a: AuthResult(success=True), auth_required=True)
    ctl.start()
    try:
        env = make_env(SMTP_URL=f"smtp://mailer:pw@127.0.0.1:{port}?starttls=1", SMTP_CA_FILE=str(ca))
        env.recipient("u1")
        env.publish("lead.assigned", LEAD)
        env.send_due()
        # without the CA the certificate is not trusted: the channel is down, nothing is sent in clear
        untrusted = make_env(SMTP_URL=f"smtp://mailer:pw@127.0.0.1:{port}?starttls=1")
        untrusted.recipient("u1")
        untrusted.publish("lead.assigned", LEAD)
        untrusted.send_due()
    finally:
        ctl.stop()
    assert len(seen) == 1 and tls_seen == [True]
    assert env.deliveries(channel="email")[0].status == "sent"
    row = untrusted.deliveries(channel="email")[0]
    assert row.status == "pending" and "TLS" in row.last_error
