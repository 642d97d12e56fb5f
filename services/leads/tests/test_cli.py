"""`crm-leads import`: chunked upload over real HTTP, progress bar, row numbers of the whole file."""
import io
import threading
from types import SimpleNamespace

from werkzeug.serving import make_server

from leads.cli import bar, import_file


def test_chunked_import_with_progress(lite, tmp_path):
    server = make_server("127.0.0.1", 0, lite.app, threaded=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        rows = ["姓名,手机"] + [f"客户{i},1390000{i:04d}" for i in range(25)] + ["坏行,123"]
        path = tmp_path / "big.csv"
        path.write_bytes("\n".join(rows).encode("gbk"))
        token = lite.manager()["Authorization"].split(" ", 1)[1]
        args = SimpleNamespace(file=str(path), encoding=None, source="import", mapping='{"姓名": "name", "手机": "phone"}',
                               campaign_id=None, chunk=10, url=f"http://127.0.0.1:{server.server_port}", token=token)
        out = io.StringIO()
        totals = import_file(args, out=out)
    finally:
        server.shutdown()
    assert (totals["total"], totals["created"], totals["failed"]) == (26, 25, 1)
    assert [(r["row"], r["field"]) for r in totals["report"]] == [(27, "phone")]
    assert out.getvalue().count("\r[") == 3 and "26/26 rows" in out.getvalue()
    assert bar(5, 10, width=4) == "\r[##..] 5/10 rows"
