"""The live config a page embeds for static/js/live.js (``<script id="live-config">``: its cursor, topics,
charts and strings), read back as the browser reads it."""

import json
import re

_CONFIG = re.compile(r'<script id="live-config" type="application/json">(.*?)</script>', re.S)


def live_config(page) -> dict:
    """The config of ``page``: the HTML text, or a test client's response."""
    html = page if isinstance(page, str) else page.content.decode()
    match = _CONFIG.search(html)
    assert match, "the page embeds no live-config"
    return json.loads(match.group(1))
