"""Templates: both languages, fallback to the other language, the sandbox, preview."""
import pytest

from notify import store
from notify.domain import defaults, templates
from notify.domain.templates import TemplateError, render, render_one

UNSAFE = [
    "{{ ''.__class__.__mro__ }}",
    "{{ name.__class__ }}",
    "{{ payload['__class__'] }}",
    "{{ name.upper() }}",
    "{{ lipsum() }}",
    "{% for x in range(10) %}{{ x }}{% endfor %}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ name.format }}",
]


@pytest.mark.parametrize("source", UNSAFE)
def test_the_sandbox_refuses_unsafe_templates(source):
    with pytest.raises(TemplateError):
        render_one(source, {"name": "x", "payload": {"a": 1}})


def test_no_python_attribute_is_reachable_even_past_the_static_check():
    # the environment itself refuses attribute access on non-payload objects at render time
    env = templates._TEXT
    with pytest.raises(Exception):
        env.from_string("{{ x.__class__ }}").render(x="")
    assert env.from_string("{{ d.items }}").render(d={"a": 1}) == ""  # a key, not the method: absent
    assert env.from_string("{{ d.name }}").render(d={"name": "ok"}) == "ok"


def test_every_default_renders_in_both_languages_with_a_sample_payload():
    sample = {"lead_id": "L1", "name": "张三", "subject_type": "quote", "subject_id": "Q1", "step": 1,
              "decision": "approve", "contract_id": "K1", "amount": "10.00", "currency": "CNY", "order_id": "O1",
              "ticket_id": "T1", "score": 1, "days_overdue": 31, "items": [{"subject": "a"}], "count": 1,
              "customer_name": "王芳", "holiday_name": "春节", "url": "https://x", "webhook_id": "1", "error": "e"}
    for key, langs in defaults.DEFAULT_TEMPLATES.items():
        assert set(langs) == {"zh-CN", "en"}, key
        for lang, (subject, body) in langs.items():
            r = render(subject, body, sample)
            assert r.subject and r.text, (key, lang)


def test_each_default_subscription_has_a_template_and_every_notify_event_is_considered():
    for sub in defaults.DEFAULT_SUBSCRIPTIONS:
        assert sub.template in defaults.DEFAULT_TEMPLATES
    subscribed = {s.event_type for s in defaults.DEFAULT_SUBSCRIPTIONS}
    # events without a person to tell by default: lead.created (pool: robots), lead.followed_up
    # (a reminder is scheduled instead), customer.created (read model; customer.updated also tells the
    # owner of a churn-risk flag)
    from crm_shared.events.catalogue import bindings_for
    assert set(bindings_for("notify")) - subscribed == {"lead.created", "lead.followed_up", "customer.created"}


def test_html_is_autoescaped_and_text_is_not():
    r = render("{{ name }}", "Hi {{ name }}", {"name": "<b>&"})
    assert r.text == "Hi <b>&" and "Hi &lt;b&gt;&amp;" in r.html and r.subject == "<b>&"


def test_language_and_fallback_to_the_other_language(env):
    env.recipient("en1", language="en")
    env.recipient("zh1", language="zh-CN")
    # only an English template for this key: a zh-CN reader gets English rather than nothing
    r = env.client.post("/v1/subscriptions", headers=env.admin(), json={
        "event_type": "lead.created", "recipient_kind": "user", "recipient_value": "zh1", "channels": ["inbox"],
        "template": "lead.created"})
    assert r.status_code == 201, r.json
    r = env.client.post("/v1/templates", headers=env.admin(), json={
        "event_type": "reminder.follow_up", "channel": "inbox", "language": "en",
        "subject": "Custom EN {{ lead_id }}", "body": "b"})
    assert r.status_code == 201
    with env.rt.uow() as uow:
        (r_en, _, lang_en) = store.render_for(uow.session, "lead.assigned", "inbox", "en", {"name": "Bo"})
        (r_zh, _, lang_zh) = store.render_for(uow.session, "lead.assigned", "inbox", "zh-CN", {"name": "Bo"})
        (r_custom, _, lang_c) = store.render_for(uow.session, "reminder.follow_up", "inbox", "en", {"lead_id": "L1"})
        (r_other, _, lang_o) = store.render_for(uow.session, "reminder.follow_up", "email", "en", {"lead_id": "L1"})
    assert lang_en == "en" and r_en.subject == "New lead: Bo"
    assert lang_zh == "zh-CN" and r_zh.subject == "新线索：Bo"
    assert lang_c == "en" and r_custom.subject == "Custom EN L1"
    assert lang_o == "en" and r_other.subject.startswith("Follow-up due")  # the custom one is for the inbox only


def test_fallback_when_only_the_other_language_exists(env):
    r = env.client.post("/v1/templates", headers=env.admin(), json={
        "event_type": "lead.recycled", "channel": "inbox", "language": "en", "subject": "EN only {{ lead_id }}",
        "body": "x"})
    assert r.status_code == 201
    # remove the shipped zh-CN one from consideration by asking for a key only the custom has
    with env.rt.uow() as uow:
        uow.session.execute(__import__("notify").models.templates.update().values(event_type="custom.key"))
        uow.commit()
        cands = list(store.template_candidates(uow.session, "custom.key", "inbox", "zh-CN"))
    assert [c[3] for c in cands] == ["en"]


def test_posting_an_unsafe_template_is_refused_field_by_field(env):
    r = env.client.post("/v1/templates", headers=env.admin(), json={
        "event_type": "lead.assigned", "channel": "email", "language": "en", "subject": "ok",
        "body": "{{ ''.__class__.__mro__ }}"})
    assert r.status_code == 422 and "body" in r.json["errors"] and "unsafe" in r.json["detail"]
    r = env.client.post("/v1/templates", headers=env.admin(), json={
        "event_type": "lead.assigned", "channel": "email", "language": "en", "subject": "{% if %}", "body": "x"})
    assert r.status_code == 422 and "subject" in r.json["errors"]
    r = env.client.post("/v1/templates", headers=env.admin(), json={
        "event_type": "no.such", "channel": "pigeon", "language": "fr", "subject": "", "body": "x"})
    assert r.status_code == 422 and set(r.json["errors"]) >= {"event_type", "channel", "language", "subject"}
    r = env.client.post("/v1/templates", headers=env.headers("u1"), json={
        "event_type": "lead.assigned", "channel": "email", "language": "en", "subject": "s", "body": "b"})
    assert r.status_code == 403


def test_preview_with_a_sample_payload(env):
    r = env.client.post("/v1/templates", headers=env.admin(), json={
        "event_type": "lead.assigned", "channel": "sms", "language": "zh-CN", "subject": "新线索",
        "body": "{{ name }}：" + "请尽快跟进。" * 20, "sms_rule": "trim"})
    assert r.status_code == 201
    tid = r.json["id"]
    p = env.client.post(f"/v1/templates/{tid}/preview", headers=env.admin(), json={"payload": {"name": "<李四>"}})
    assert p.status_code == 200, p.json
    assert p.json["text"].startswith("<李四>：") and "&lt;李四&gt;" in p.json["html"]
    assert len(p.json["sms_parts"]) == 1 and len(p.json["sms_parts"][0]) == 70 and p.json["sms_parts"][0].endswith("…")
    shipped = env.client.post("/v1/templates/default:lead.assigned:en/preview", headers=env.admin(),
                              json={"payload": {"name": "Bo", "source": "web"}})
    assert shipped.json["subject"] == "New lead: Bo" and "(source: web)" in shipped.json["text"]
    assert env.client.post("/v1/templates/999/preview", headers=env.admin(), json={"payload": {}}).status_code == 404
    listed = env.client.get("/v1/templates", headers=env.admin()).json
    assert any(t["id"] == tid for t in listed) and any(t["default"] for t in listed)


def test_custom_template_is_used_for_the_message(env):
    env.recipient("u1", language="en")
    env.client.post("/v1/templates", headers=env.admin(), json={
        "event_type": "lead.assigned", "channel": "inbox", "language": "en",
        "subject": "Yours now: {{ company }}", "body": "{{ name }} from {{ source }}"})
    env.publish("lead.assigned", {"lead_id": "L1", "owner_id": "u1", "name": "Bo", "company": "ACME",
                                  "source": "fair", "reason": "manual"})
    env.send_due()
    item = env.client.get("/v1/inbox", headers=env.headers("u1")).json["items"][0]
    assert item["title"] == "Yours now: ACME" and item["body"] == "Bo from fair"
