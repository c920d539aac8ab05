"""Simplified Chinese: the catalog translates every string, keeps every placeholder, is compiled into
the committed .mo, and the pages speak Chinese when the user picks 简体中文 (cookie, header or the
language switcher), while English stays the default."""

import ast
import gettext
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from nodes.choices import NodeStatus
from tests import factories
from tests.jobs import factories as jf
from tests.live import live_config

BASE = Path(settings.BASE_DIR)
PO = BASE / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
APP_DIRS = ("console", "jobs", "models_registry", "nodes")
GETTEXT_NAMES = {"_", "gettext", "gettext_lazy", "gettext_noop", "ngettext", "ngettext_lazy"}
# A Python %-placeholder (named or not) or an escaped percent; "{{ x }}" and "{id}" are kept as text.
PLACEHOLDER = re.compile(r"%%|%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]|%[-#0 +]*\d*(?:\.\d+)?[sdifrx]"
                         r"|\{\{[^}]*\}\}|\{\w+\}")
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def _unquote(line: str) -> str:
    return ast.literal_eval(line.strip())


def catalog_entries() -> list[dict]:
    """The entries of the .po (header and obsolete ones left out): msgctxt, msgid, msgid_plural,
    msgstr (a list: one string, or one per plural form) and flags."""
    entries = []
    for block in PO.read_text(encoding="utf-8").split("\n\n"):
        entry: dict = {"flags": set(), "msgstr": []}
        field = None
        for line in block.splitlines():
            if line.startswith("#,"):
                entry["flags"].update(flag.strip() for flag in line[2:].split(","))
            elif line.startswith("#~"):
                entry["obsolete"] = True
            elif line.startswith("#") or not line.strip():
                continue
            elif line.startswith('"'):
                if field == "msgstr":
                    entry["msgstr"][-1] += _unquote(line)
                else:
                    entry[field] += _unquote(line)
            else:
                keyword, _, value = line.partition(" ")
                if keyword.startswith("msgstr"):
                    field = "msgstr"
                    entry["msgstr"].append(_unquote(value))
                else:
                    field = keyword
                    entry[field] = _unquote(value)
        if "msgid" in entry and entry["msgid"] and not entry.get("obsolete"):
            entries.append(entry)
    return entries


@pytest.fixture(scope="module")
def entries():
    return catalog_entries()


def test_the_chinese_catalog_has_entries_and_a_plural_rule_for_chinese(entries):
    assert len(entries) > 500
    header = PO.read_text(encoding="utf-8").split("\n\n")[0]
    assert "Plural-Forms: nplurals=1; plural=0;" in header
    assert "#, fuzzy" not in header


def test_every_msgid_is_translated_into_chinese_and_none_is_fuzzy(entries):
    untranslated = [e["msgid"] for e in entries if not all(e["msgstr"])]
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    assert not untranslated, f"untranslated (run `make messages` and translate them): {untranslated}"
    assert not fuzzy, f"fuzzy (check and clear the flag): {fuzzy}"
    # Acronyms and units (CPU, URL, TTFT p50, tokens/s) may stay Latin; at most one entry in twenty.
    latin = [e["msgid"] for e in entries if not any(CHINESE.search(s) for s in e["msgstr"])]
    assert len(latin) <= len(entries) // 20, latin


def test_placeholders_in_each_msgstr_are_those_of_its_msgid(entries):
    wrong = []
    for e in entries:
        wanted = sorted(PLACEHOLDER.findall(e["msgid"]))
        for msgstr in e["msgstr"]:
            if sorted(PLACEHOLDER.findall(msgstr)) != wanted:
                wrong.append((e["msgid"], msgstr))
    assert not wrong, wrong


def test_msgfmt_accepts_the_catalog_with_its_format_checks_and_counts_no_untranslated_or_fuzzy():
    if not shutil.which("msgfmt"):
        pytest.skip("gettext's msgfmt is not installed")
    run = subprocess.run(["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(PO)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert "translated message" in run.stderr
    assert "untranslated" not in run.stderr and "fuzzy" not in run.stderr, run.stderr


def test_the_committed_mo_carries_every_translation_of_the_po(entries):
    """`make run` reads the .mo: it must be compiled from the current .po (run `make messages`)."""
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    stale = []
    for e in entries:
        key = e["msgid"] if "msgctxt" not in e else f"{e['msgctxt']}\x04{e['msgid']}"
        if "msgid_plural" in e:
            got = compiled.ngettext(e["msgid"], e["msgid_plural"], 1) if "msgctxt" not in e else None
            if got != e["msgstr"][0]:
                stale.append(e["msgid"])
        elif compiled._catalog.get(key) != e["msgstr"][0]:
            stale.append(e["msgid"])
    assert not stale, f"the .mo is older than the .po for: {stale}"


def _python_strings() -> set[str]:
    found = set()
    for app in APP_DIRS:
        for path in (BASE / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                first = node.args[0]
                if name in GETTEXT_NAMES and isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
    return found


TRANS_TAG = re.compile(r"""{%\s*trans(?:late)?\s+("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
                       r"""(\s+context\s+("[^"]*"|'[^']*'))?""")


def _template_strings() -> set[tuple[str | None, str]]:
    found = set()
    for path in (BASE / "templates").rglob("*.html"):
        for match in TRANS_TAG.finditer(path.read_text(encoding="utf-8")):
            context = match.group(3)[1:-1] if match.group(3) else None
            found.add((context, match.group(1)[1:-1].replace("%", "%%")))
    return found


def test_every_marked_string_of_the_templates_and_the_apps_is_in_the_catalog(entries):
    """A string marked after the last `make messages` shows in English to Chinese readers."""
    known = {(e.get("msgctxt"), e["msgid"]) for e in entries}
    missing = sorted(s for s in _template_strings() if s not in known)
    missing += sorted(s for s in _python_strings() if (None, s) not in known)
    assert not missing, f"not in locale/zh_Hans (run `make messages` and translate them): {missing}"


# --------------------------------------------------------------------------------------- pages


@pytest.fixture(autouse=True)
def back_to_the_default_language():
    """A request in Chinese leaves zh-hans active in this thread (LocaleMiddleware activates, never
    deactivates): later tests in the same worker must start in English again."""
    yield
    translation.deactivate()


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("admin"))
    return client


@pytest.fixture
def chinese(admin_client):
    admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    return admin_client


@pytest.mark.django_db
def test_the_nodes_page_speaks_chinese_when_the_language_cookie_says_zh_hans(chinese):
    factories.node(name="npu-01", status=NodeStatus.DEGRADED)
    page = chinese.get(reverse("node-list")).content.decode()
    assert '<html lang="zh-hans">' in page
    for text in ("<h1>节点</h1>", "添加节点", "SSH 凭据", "最近在线", "不可达", "维护中", "降级", "加速卡", "推理服务"):
        assert text in page, text
    assert "Add node" not in page and "Last seen" not in page


@pytest.mark.django_db
def test_the_jobs_page_speaks_chinese_with_translated_states_and_headings(chinese):
    jf.job(name="qwen-chat")
    page = chinese.get(reverse("job-list")).content.decode()
    for text in ("<h1>推理服务</h1>", "新建推理服务", "模型版本", "推理引擎", "副本数", "期望状态", "管理员"):
        assert text in page, text
    assert "Serving jobs" not in page and "New job" not in page


@pytest.mark.django_db
def test_the_node_page_names_the_accelerator_model_and_memory_in_chinese(chinese):
    node = factories.node(name="gpu-01")
    factories.accelerators(node, count=2)
    page = chinese.get(reverse("node-detail", args=[node.pk])).content.decode()
    for text in ("立即探测", "进入维护", "主机信息", "型号", "显存", "健康状态", "正常", "状态历史"):
        assert text in page, text


@pytest.mark.django_db
def test_the_overview_and_its_live_strings_are_chinese(chinese):
    page = chinese.get(reverse("dashboard")).content.decode()
    for text in ("集群总览", "加速卡热力图", "需要关注的节点", "最近事件", "连接中…"):
        assert text in page, text
    config = live_config(page)
    assert config["strings"]["no_data"] == "此时间范围内无数据"
    assert [r["label"] for r in config["ranges"]][:2] == ["实时", "15 分钟"]
    assert config["charts"][0]["title"] == "推理服务吞吐（输出 tokens/s）"
    assert config["heatmap"]["health_names"] == {"0": "正常", "1": "警告", "2": "严重"}


def test_the_login_page_speaks_chinese_to_a_browser_that_asks_for_it(client):
    page = client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9,en;q=0.5").content.decode()
    for text in ("<h1>登录</h1>", "用户名", "密码", "BooM 控制台"):
        assert text in page, text
    assert "User name" not in page


@pytest.mark.django_db
def test_a_wrong_password_is_reported_in_chinese(client, make_user):
    make_user("viewer")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    page = client.post(reverse("login"), {"username": "viewer-user", "password": "wrong"}).content.decode()
    assert "用户名或密码不正确，请重试。" in page


@pytest.mark.django_db
def test_the_language_switcher_turns_the_console_chinese_and_back(admin_client):
    switch = admin_client.post(reverse("set_language"), {"language": "zh-hans", "next": reverse("node-list")})
    assert switch.status_code == 302 and switch["Location"] == reverse("node-list")
    assert "添加节点" in admin_client.get(reverse("node-list")).content.decode()
    admin_client.post(reverse("set_language"), {"language": "en", "next": "/"})
    page = admin_client.get(reverse("node-list")).content.decode()
    assert "Add node" in page and "添加节点" not in page


@pytest.mark.django_db
def test_english_stays_the_default_without_a_choice(admin_client):
    page = admin_client.get(reverse("node-list")).content.decode()
    assert '<html lang="en">' in page and "Add node" in page and "添加节点" not in page
    # The switcher names each language in that language.
    assert ">简体中文</option>" in page and ">English</option>" in page
