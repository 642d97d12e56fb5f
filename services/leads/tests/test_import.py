"""CSV import: encodings, mapping, per-row report, duplicates, no half-written rows."""
import io

from sqlalchemy import func, select

from leads.models import lead_keys, leads

CSV = ("姓名,公司,手机,邮箱,城市\n"
       "张三,杭州甲科技有限公司,138-0013-8000,zhang@x.com,杭州\n"
       "李四,杭州乙科技有限公司,12345,li@x.com,杭州\n"          # bad phone
       "王五,,,,杭州\n"                                          # neither phone nor email
       "赵六,杭州丙科技,13900139000,not-an-email,杭州\n"          # bad email
       "钱七,杭州甲科技 有限公司,13700137000,qian@x.com,杭州\n"   # same company+city as row 2
       "孙八,杭州丁科技,13600136000,sun@x.com,杭州\n"
       "周九,,+86 13600136000,,\n")                              # duplicate phone of row 7 in this file
MAPPING = '{"姓名": "name", "公司": "company", "手机": "phone", "邮箱": "email", "城市": "city"}'


def upload(env, data: bytes, mapping=MAPPING, headers=None, **form):
    return env.client.post("/v1/leads/import", data={"file": (io.BytesIO(data), "leads.csv"), "mapping": mapping, **form},
                           headers=headers or env.manager(), content_type="multipart/form-data")


def test_report_per_row_and_good_rows_kept(env):
    existing = env.post("/v1/leads", {"phone": "13500135000"}, env.rep("rep1")).json
    body = CSV + "吴十,,13500135000,,\n"
    r = upload(env, body.encode("utf-8"))
    assert r.status_code == 200, r.json
    out = r.json
    assert (out["total"], out["created"], out["duplicates"], out["failed"]) == (8, 2, 3, 3)
    by_row = {(x["row"], x["field"]): x for x in out["report"]}
    assert set(by_row) == {(3, "phone"), (4, "phone"), (5, "email"), (6, "company"), (8, "phone"), (9, "phone")}
    assert by_row[(6, "company")]["duplicate_of"] is not None
    assert by_row[(8, "phone")]["message"] == "Duplicate of row 7 in this file."
    assert by_row[(9, "phone")]["duplicate_of"] == existing["id"] and by_row[(9, "phone")]["owner_name"] == "REP1"
    with env.rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(leads)).scalar_one() == 3
        # no orphan keys from refused rows
        assert c.execute(select(func.count()).select_from(lead_keys)).scalar_one() == 1 + 3 + 3
        assert set(c.execute(select(leads.c.source)).scalars()) == {"other", "import"}


def test_gbk_and_utf8_bom_are_detected(env):
    rows = "姓名,手机\n张三,13800138000\n"
    assert upload(env, rows.encode("gbk"), '{"姓名": "name", "手机": "phone"}').json["created"] == 1
    rows = "姓名,手机\n李四,13900139000\n"
    assert upload(env, b"\xef\xbb\xbf" + rows.encode("utf-8"), '{"姓名": "name", "手机": "phone"}').json["created"] == 1
    with env.rt.engine.connect() as c:
        assert sorted(c.execute(select(leads.c.name)).scalars()) == sorted(["张三", "李四"])


def test_columns_named_like_fields_need_no_mapping(env):
    r = upload(env, b"name,phone,email\nA,13800138000,a@x.com\n", mapping="")
    assert r.status_code == 200 and r.json["created"] == 1


def test_bad_uploads_are_422(env):
    assert upload(env, b"a,b\n1,2\n", mapping='{"a": "salary"}').status_code == 422
    assert upload(env, b"a,b\n1,2\n", mapping='{"zzz": "phone"}').status_code == 422
    assert upload(env, b"a,b\n1,2\n", mapping="not json").status_code == 422
    assert upload(env, b"\xff\xfe\x00bad", mapping="").status_code == 422
    r = env.client.post("/v1/leads/import", data={"mapping": MAPPING}, headers=env.manager(),
                        content_type="multipart/form-data")
    assert r.status_code == 422
    assert upload(env, b"name,phone\nA,13800138000\n", mapping="", headers=env.rep()).status_code == 403


def test_imported_leads_are_routed(env):
    env.team([{"user_id": "a", "name": "A"}, {"user_id": "b", "name": "B"}])
    body = "phone\n" + "".join(f"1390000{i:04d}\n" for i in range(10))
    assert upload(env, body.encode(), mapping="").json["created"] == 10
    with env.rt.engine.connect() as c:
        owners = sorted(c.execute(select(leads.c.owner_id)).scalars())
    assert owners == ["a"] * 5 + ["b"] * 5


def test_create_many_undoes_a_lead_whose_key_was_taken_meanwhile(env):
    """The chunk's keys are checked before writing; a key taken after that check (a concurrent
    intake) makes that one lead a duplicate, undone with its team turn, and the others stand."""
    from leads.domain import intake, scoring
    from leads.domain.actor import Actor
    from leads.models import team_members
    env.team([{"user_id": "a", "name": "A"}, {"user_id": "b", "name": "B"}])
    taken = env.post("/v1/leads", {"phone": "13800138000"}, env.rep("rep1")).json
    norms = [intake.prepare({"phone": p, "source": "import"}) for p in ("13900139000", "13800138000", "13700137000")]
    with env.rt.uow() as uow:
        out = intake.create_many(uow, norms, Actor("m", "M", ("sales_manager",)), env.clock.now(),
                                 scoring.load(uow.session))
        uow.commit()
    assert [type(r).__name__ for r in out] == ["Created", "Duplicate", "Created"]
    assert str(out[1].lead_id) == taken["id"]
    assert [r.lead["owner_id"] for r in (out[0], out[2])] == ["a", "a"]
    with env.rt.engine.connect() as c:
        assert c.execute(select(func.count()).select_from(leads)).scalar_one() == 3
        counts = dict(c.execute(select(team_members.c.user_id, team_members.c.assigned_count)).all())
    assert counts == {"a": 2, "b": 0}
    # b's turn was given back: the next lead is b's
    assert env.post("/v1/leads", {"phone": "13600136000", "source": "website"}, env.manager()).json["owner_id"] == "b"
