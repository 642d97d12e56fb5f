"""The dispatch job in chunks (notify/dispatch.py): a channel's due rows read, sent over one SMTP
connection and recorded together. Faults on the way: the chunk's write fails, the worker dies
between sending and recording, the server refuses a recipient, the server drops the connection.
No email is lost; none is sent twice except after a crash between sending and recording, where
the rows are sent again once their lease has run out (and carry the same X-CRM-Delivery header)."""
from __future__ import annotations

import email
from collections import Counter
from email import policy

import pytest
from sqlalchemy import event

from notify import dispatch
from notify.channels import email as email_channel

from .conftest import free_port


class Smtp:
    """An SMTP server that records each message and the connection it came on; it can refuse
    recipients and close a connection once it has carried `per_connection` messages."""

    def __init__(self, refuse=(), per_connection: int | None = None):
        self.messages: list = []
        self.sessions: list = []
        self.refuse = set(refuse)
        self.per_connection = per_connection
        outer = self

        class Handler:
            async def handle_MAIL(self, server, session, envelope, address, mail_options):
                if session not in outer.sessions:
                    outer.sessions.append(session)
                done = getattr(session, "crm_messages", 0)
                if outer.per_connection is not None and done >= outer.per_connection:
                    server.transport.close()  # as a server that caps the messages per connection
                    return "421 4.7.0 too many messages on this connection"
                envelope.mail_from = address
                envelope.mail_options.extend(mail_options)
                return "250 OK"

            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if address in outer.refuse:
                    return "550 5.1.1 no such user"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                session.crm_messages = getattr(session, "crm_messages", 0) + 1
                msg = email.message_from_bytes(envelope.content, policy=policy.default)
                outer.messages.append((list(envelope.rcpt_tos), msg, session))
                return "250 OK"

        from aiosmtpd.controller import Controller
        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"

    def refs(self) -> Counter:
        return Counter(msg["X-CRM-Delivery"] for _, msg, _ in self.messages)

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def servers():
    made = []

    def make(**kw):
        s = Smtp(**kw)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


def leads_to(env, n: int, bad: set[int] = frozenset()) -> list[str]:
    """n reps with an address each (rep{i} in `bad`: an address the server refuses), one lead each."""
    addresses = []
    for i in range(n):
        address = f"rep{i}@{'nowhere' if i in bad else 'example'}.com"
        env.recipient(f"rep{i}", email=address, language="en")
        env.publish("lead.assigned", {"lead_id": f"L{i}", "owner_id": f"rep{i}", "name": f"Lead {i}",
                                      "reason": "auto"})
        addresses.append(address)
    return addresses


def emails(env):
    return env.deliveries(channel="email")


def count_statements(env):
    seen = []
    event.listen(env.rt.engine, "before_cursor_execute",
                 lambda *a, **k: None if a[2].startswith(("BEGIN", "COMMIT", "ROLLBACK")) else seen.append(a[2]))
    return seen


def count_connections(monkeypatch):
    opened = []
    connect = email_channel.SmtpSession._connect

    def counting(self):
        client = connect(self)
        opened.append(client)
        return client
    monkeypatch.setattr(email_channel.SmtpSession, "_connect", counting)
    return opened


def test_a_chunk_is_one_read_one_connection_and_one_write(make_env, servers, database_url, monkeypatch):
    smtp = servers()
    env = make_env(database_url, SMTP_URL=smtp.url, NOTIFY_THROTTLE_MAX=1000)
    n = dispatch.CHUNK + 10  # two chunks
    leads_to(env, n)
    opened = count_connections(monkeypatch)
    statements = count_statements(env)
    env.send_due()
    assert len(smtp.messages) == n and set(smtp.refs().values()) == {1}
    assert len(opened) == 2 and len(smtp.sessions) == 2  # one connection per chunk
    assert all(r.status == "sent" and r.attempts == 1 for r in emails(env))
    # claim (3) + per chunk: recipients, preferences, throttle counts, tries (one executemany),
    # deliveries (one executemany); nothing per row
    assert len(statements) <= 3 + 2 * 5 + 2, statements
    env.send_due()
    assert len(smtp.messages) == n


def test_the_throttle_counts_the_sends_of_the_same_chunk(make_env, servers):
    smtp = servers()
    env = make_env(SMTP_URL=smtp.url, NOTIFY_THROTTLE_MAX=3, NOTIFY_THROTTLE_WINDOW_SECONDS=600)
    env.recipient("rep0", email="rep0@example.com", language="en")
    for i in range(7):
        env.publish("lead.assigned", {"lead_id": f"L{i}", "owner_id": "rep0", "name": f"Lead {i}", "reason": "auto"})
    env.send_due()
    rows = emails(env)
    assert Counter(r.status for r in rows) == {"sent": 3, "digest": 4}
    assert all(r.digest_mode == "throttle" for r in rows if r.status == "digest")
    assert len(smtp.messages) == 3


def test_a_failed_chunk_write_is_recorded_row_by_row(make_env, servers, database_url, monkeypatch):
    smtp = servers()
    env = make_env(database_url, SMTP_URL=smtp.url, NOTIFY_THROTTLE_MAX=1000)
    leads_to(env, 6)
    apply = dispatch._apply

    def failing(rt, s, outcomes, now):
        if len(outcomes) > 1:
            apply(rt, s, outcomes, now)  # written, then the commit is refused: nothing of it stays
            raise RuntimeError("the chunk's transaction failed")
        return apply(rt, s, outcomes, now)
    monkeypatch.setattr(dispatch, "_apply", failing)
    env.send_due()
    monkeypatch.setattr(dispatch, "_apply", apply)
    assert all(r.status == "sent" and r.attempts == 1 for r in emails(env))
    env.send_due()
    env.clock.advance(hours=2)  # past any lease: nothing is due again
    env.send_due()
    assert len(smtp.messages) == 6 and set(smtp.refs().values()) == {1}


def test_a_row_whose_own_write_fails_too_waits_for_its_lease(make_env, servers, monkeypatch):
    smtp = servers()
    env = make_env(SMTP_URL=smtp.url, NOTIFY_THROTTLE_MAX=1000, NOTIFY_DISPATCH_LEASE_SECONDS=300)
    leads_to(env, 4)
    unlucky = emails(env)[1].id
    apply = dispatch._apply

    def failing(rt, s, outcomes, now):
        if len(outcomes) > 1 or outcomes[0].row.id == unlucky:
            raise RuntimeError("write refused")
        return apply(rt, s, outcomes, now)
    monkeypatch.setattr(dispatch, "_apply", failing)
    env.send_due()
    monkeypatch.setattr(dispatch, "_apply", apply)
    status = {r.id: r.status for r in emails(env)}
    assert status.pop(unlucky) == "sending" and set(status.values()) == {"sent"}
    env.send_due()  # the lease still runs: not sent again
    assert len(smtp.messages) == 4
    env.clock.advance(seconds=301)
    env.send_due()
    assert all(r.status == "sent" for r in emails(env))
    refs = smtp.refs()
    assert sum(refs.values()) == 5 and [k for k, v in refs.items() if v == 2] == [f"{unlucky}:{emails(env)[1].event_id}"]


class Crash(BaseException):
    """The worker process dies (not an Exception: nothing in the job catches it)."""


def test_a_crash_between_sending_and_recording_loses_nothing(make_env, servers, database_url, monkeypatch):
    smtp = servers()
    env = make_env(database_url, SMTP_URL=smtp.url, NOTIFY_THROTTLE_MAX=1000, NOTIFY_DISPATCH_LEASE_SECONDS=300)
    leads_to(env, 5)

    def crash(rt, outcomes):
        raise Crash()
    monkeypatch.setattr(dispatch, "_record", crash)
    with pytest.raises(Crash):
        env.send_due()
    monkeypatch.undo()
    assert len(smtp.messages) == 5 and {r.status for r in emails(env)} == {"sending"}
    env.send_due()  # another worker, while the dead one's lease runs: nothing is sent again
    assert len(smtp.messages) == 5
    env.clock.advance(seconds=301)
    env.send_due()
    rows = emails(env)
    assert all(r.status == "sent" and r.attempts == 1 for r in rows)
    # at least once: each email again, with the delivery's header so the receiver can drop the copy
    assert smtp.refs() == Counter({f"{r.id}:{r.event_id}": 2 for r in rows})
    env.send_due()
    assert len(smtp.messages) == 10


def test_a_refused_recipient_fails_alone_and_the_connection_goes_on(make_env, servers, database_url, monkeypatch):
    smtp = servers(refuse={"rep2@nowhere.com"})
    env = make_env(database_url, SMTP_URL=smtp.url, NOTIFY_THROTTLE_MAX=1000)
    leads_to(env, 5, bad={2})
    opened = count_connections(monkeypatch)
    env.send_due()
    by_rep = {r.recipient: r for r in emails(env)}
    assert by_rep["rep2"].status == "failed" and "refused" in by_rep["rep2"].last_error
    assert all(r.status == "sent" for k, r in by_rep.items() if k != "rep2")
    assert sorted(to[0] for to, _, _ in smtp.messages) == [f"rep{i}@example.com" for i in (0, 1, 3, 4)]
    assert len(opened) == 1 and len(smtp.sessions) == 1
    env.clock.advance(hours=2)
    env.send_due()
    assert len(smtp.messages) == 4


def test_a_dropped_connection_is_opened_again_and_nothing_is_sent_twice(make_env, servers, database_url):
    smtp = servers(per_connection=3)
    env = make_env(database_url, SMTP_URL=smtp.url, NOTIFY_THROTTLE_MAX=1000)
    leads_to(env, 10)
    env.send_due()
    assert all(r.status == "sent" and r.attempts == 1 for r in emails(env))
    assert len(smtp.messages) == 10 and set(smtp.refs().values()) == {1}
    assert len(smtp.sessions) == 4  # 3 + 3 + 3 + 1
    env.clock.advance(hours=2)
    env.send_due()
    assert len(smtp.messages) == 10


def test_a_server_gone_mid_chunk_leaves_the_rest_for_later(make_env, servers):
    smtp = servers()
    env = make_env(SMTP_URL=smtp.url, NOTIFY_THROTTLE_MAX=1000)
    leads_to(env, 6)
    session_send = email_channel.SmtpSession.send
    calls = []

    def stop_after_two(self, *a, **k):
        calls.append(1)
        if len(calls) == 3:
            smtp.stop()  # the server goes away: this message finds it gone
            self.close()
        return session_send(self, *a, **k)
    email_channel.SmtpSession.send = stop_after_two
    try:
        env.send_due()
    finally:
        email_channel.SmtpSession.send = session_send
    rows = emails(env)
    assert Counter(r.status for r in rows) == {"sent": 2, "pending": 4}
    # the row that found it down counts a try; the rest wait without one
    assert sorted(r.attempts for r in rows if r.status == "pending") == [0, 0, 0, 1]
    assert len(smtp.messages) == 2
