"""scripts/reliability.py renders docs/RELIABILITY.md from whatever JSON the reliability tests wrote:
the fault tests' counts, the hostile-input figures, the flow's, and anything else, never a number
of its own."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_script():
    spec = importlib.util.spec_from_file_location("reliability_script", ROOT / "scripts" / "reliability.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_renders_every_result_file(tmp_path):
    fault = {"name": "faults-x", "title": "Broker stopped", "backend": "PostgreSQL + RabbitMQ",
             "faults": [{"fault": "stop_app", "at_lead": 700, "in_flight": 12, "down_seconds": 9.5, "faults": 1}],
             "faults_injected": 1, "events_produced": 4321, "events_by_type": {"lead.assigned": 2000},
             "deliveries_expected": 5200, "deliveries_processed": 5200, "lost": 0, "duplicated": 0,
             "duplicated_by_kind": {"sales: customer per lead": 0}, "effects": {"sales: customers": 300},
             "total_seconds": 99.5, "settle_seconds": 7.25}
    (tmp_path / "faults-x.json").write_text(json.dumps(fault))
    (tmp_path / "hostile.json").write_text(json.dumps({"fuzz": {"leads": {"requests": 3456, "failures": 0}},
                                                       "tokens": {"expired": {"requests": 12, "failures": 0}}}))
    (tmp_path / "flow.json").write_text(json.dumps({"steps": 8, "seconds": {"total": 41.5}}))
    md = load_script().render(tmp_path)
    assert "| Broker stopped | PostgreSQL + RabbitMQ | 1 | 5,200 | 0 | 0 | 99.5 |" in md
    assert "| stop_app | 700 | 12 | 9.5 | 1 |" in md
    assert "| events produced (all outboxes) | 4,321 |" in md and "| settle seconds | 7.2 |" in md
    assert "| leads | 0 | 3,456 |" in md  # fuzz table: service, failures, requests
    assert "| expired | 0 | 12 |" in md
    assert "| steps | 8 |" in md and "| seconds.total | 41.5 |" in md
    assert "No result files" not in md


def test_says_so_when_there_is_nothing(tmp_path):
    assert "No result files were found" in load_script().render(tmp_path)
