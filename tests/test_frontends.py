"""The consoles' texts, checked without a browser: every message key a console uses exists in
Chinese and in English (its own messages.js, or the shared ones in common/lib/i18n.js), and both
languages of a file have the same keys."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

FRONTENDS = Path(__file__).resolve().parent.parent / "frontends"
CONSOLES = ("sales", "backoffice", "service", "managers")
KEY = re.compile(r'"([a-zA-Z][\w.]*)":')


def languages(path: Path) -> dict[str, set[str]]:
    """The keys of the "zh-CN" and en blocks of an addMessages / messages object."""
    text = path.read_text(encoding="utf-8")
    zh_at, en_at = text.index('"zh-CN": {'), text.index("\n  en: {")
    return {"zh-CN": set(KEY.findall(text[zh_at + len('"zh-CN": {'):en_at])), "en": set(KEY.findall(text[en_at:]))}


COMMON = languages(FRONTENDS / "common/lib/i18n.js")


def used_keys(console: str) -> set[str]:
    """Literal keys passed to t("..."), in the console and the shared components it renders."""
    keys = set()
    for f in [FRONTENDS / console / "app.js", FRONTENDS / "common/lib/ui.js"]:
        keys |= set(re.findall(r'\bt\("([\w.]+)"', f.read_text(encoding="utf-8")))
    return keys


def test_common_messages_exist_in_both_languages():
    assert COMMON["zh-CN"] == COMMON["en"], COMMON["zh-CN"] ^ COMMON["en"]


@pytest.mark.parametrize("console", CONSOLES)
def test_every_text_of_a_console_exists_in_chinese_and_english(console):
    own = languages(FRONTENDS / console / "messages.js")
    assert own["zh-CN"] == own["en"], f"{console}: keys in one language only: {own['zh-CN'] ^ own['en']}"
    used = used_keys(console)
    assert len(used) > 10
    for lang in ("zh-CN", "en"):
        missing = used - own[lang] - COMMON[lang]
        assert not missing, f"{console} uses keys without a {lang} text: {sorted(missing)}"


@pytest.mark.parametrize("console", CONSOLES)
def test_a_console_imports_only_the_shared_library_and_its_own_files(console):
    """Each department's console can change without touching the others: it imports nothing from
    another console, and reaches the services only through the shared API client (the gateway)."""
    text = (FRONTENDS / console / "app.js").read_text(encoding="utf-8")
    for spec in re.findall(r'from "([^"]+)"', text):
        assert spec.startswith("../common/") or spec.startswith("./"), f"{console} imports {spec}"
    assert "fetch(" not in text and "http://" not in text and "https://" not in text
