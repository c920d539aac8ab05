"""The one input policy of the API (docs/security.md): what a body or a query string may hold.

- Text may not hold NUL characters or lone surrogates (``"\\ud800"``): PostgreSQL refuses them, and
  once stored they break every page and answer that reads them back. A 400 names the field and the
  path of the value inside it (``{"matchers": ["... (at matchers[0].value)"]}``).
- JSON bodies nest at most ``MAX_DEPTH`` levels (arrays and objects); deeper is a 400, never a
  ``RecursionError``.
- Integer filters and ids must fit the database's 64-bit integers: ``?job=1.5e35`` is a 400.

``SafeJSONParser`` is DRF's JSON parser (``DEFAULT_PARSER_CLASSES``), ``SafeFilterBackend`` is its
filter backend (``DEFAULT_FILTER_BACKENDS``); ``SafeStaticFilesHandler`` serves static files and
answers 404, not 500, for a path that leaves the static folders (``/static/%2e%2e/...``).
"""

import re

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousOperation
from django.db import models
from django.http import Http404
from django.http.response import HttpResponseNotFound
from django_filters import filters as dj_filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

#: The deepest nesting of arrays and objects a JSON body may have.
MAX_DEPTH = 64
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_INTEGER = re.compile(r"^[+-]?\d{1,19}$")
TEXT_MESSAGE = "Text must not contain NUL characters or lone surrogates"


def bad_text(value: str) -> bool:
    """Whether the string holds a NUL or a lone surrogate."""
    return bool(_BAD_TEXT.search(value))


def scrub(value: str) -> str:
    """The string with each NUL and lone surrogate replaced by U+FFFD (used to repair stored rows)."""
    return _BAD_TEXT.sub("\ufffd", value)


def scrub_tree(value):
    """A JSON value with every string (keys included) scrubbed; the same object when nothing changed."""
    if isinstance(value, str):
        return scrub(value) if bad_text(value) else value
    if isinstance(value, list):
        items = [scrub_tree(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, dict):
        items = {scrub_tree(k): scrub_tree(v) for k, v in value.items()}
        same = list(items) == list(value) and all(items[k] is value[k] for k in value)
        return value if same else items
    return value


def _path(parts) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def check_tree(data, max_depth: int = MAX_DEPTH) -> None:
    """Raise a 400 (``ValidationError`` keyed by the top-level field) for bad text or nesting past
    ``max_depth``. Iterative, so it never recurses itself."""
    stack = [(data, (), 0)]
    while stack:
        value, parts, depth = stack.pop()
        if isinstance(value, str):
            if bad_text(value):
                _refuse(parts, f"{TEXT_MESSAGE} (at {_path(parts) or 'the body'}).")
        elif isinstance(value, dict | list):
            if depth >= max_depth:
                _refuse(parts, f"Nested deeper than {max_depth} levels (at {_path(parts) or 'the body'}).")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and bad_text(key):
                    _refuse(parts + (scrub(key),), f"{TEXT_MESSAGE} in a key (at {_path(parts) or 'the body'}).")
                stack.append((item, parts + (key,), depth + 1))


def _refuse(parts, message: str):
    field = parts[0] if parts and isinstance(parts[0], str) else "non_field_errors"
    raise serializers.ValidationError({field: [message]})


class SafeJSONParser(JSONParser):
    """DRF's JSON parser with the input policy: bad text and deep nesting are a 400 naming the field."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {MAX_DEPTH} levels")
        check_tree(data)
        return data


def _integer_field(model, field_name: str) -> bool:
    """Whether the model field a filter reads (``job_id``, ``model__id``, ``parent``) holds integers."""
    field = None
    for part in field_name.split("__"):
        if model is None:
            return False
        try:
            field = model._meta.get_field(part)
        except Exception:
            return False
        model = field.related_model if field.is_relation else None
    if field is None:
        return False
    if field.is_relation:
        field = field.target_field
    return isinstance(field, models.IntegerField | models.AutoField)


class SafeFilterBackend(DjangoFilterBackend):
    """django-filter's backend with the input policy for query strings: no NUL or lone surrogate in
    any parameter, and filters on integer columns take integers within the 64-bit range."""

    def filter_queryset(self, request, queryset, view):
        errors = {}
        for name, values in request.query_params.lists():
            if any(bad_text(v) for v in values) or bad_text(name):
                errors[scrub(name)] = [f"{TEXT_MESSAGE}."]
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            model = filterset_class._meta.model
            for name, flt in filterset_class.base_filters.items():
                if not isinstance(flt, dj_filters.NumberFilter | dj_filters.ModelChoiceFilter |
                                  dj_filters.ModelMultipleChoiceFilter):
                    continue
                if flt.method is not None or not _integer_field(model, flt.field_name):
                    continue
                for value in request.query_params.getlist(name):
                    if value == "" or name in errors:
                        continue
                    if not (_INTEGER.match(value.strip()) and BIGINT_MIN <= int(value) <= BIGINT_MAX):
                        errors[name] = [f"Enter a whole number between {BIGINT_MIN} and {BIGINT_MAX}."]
        if errors:
            raise serializers.ValidationError(errors)
        return super().filter_queryset(request, queryset, view)


class SafeStaticFilesHandler(ASGIStaticFilesHandler):
    """Django's static handler, answering 404 (not 500) for a path that leaves the static folders."""

    async def get_response_async(self, request):
        try:
            return await super().get_response_async(request)
        except (SuspiciousOperation, ValueError, Http404):
            return HttpResponseNotFound()



def repaired_fields(obj, fields) -> dict:
    """The fields of ``obj`` (text or JSON) whose value held bad text, with that text replaced by U+FFFD."""
    changed = {}
    for name in fields:
        value = getattr(obj, name)
        fixed = scrub_tree(value)
        if fixed is not value:
            changed[name] = fixed
    return changed


def repair_rows(model, fields, connection) -> int:
    """Rewrite the rows of ``model`` whose ``fields`` hold NUL or lone surrogates (data migrations of issue 13).

    PostgreSQL never stored such text (it refuses it), so only SQLite databases are walked. Returns the
    number of rows repaired."""
    if connection.vendor == "postgresql":
        return 0
    count = 0
    for obj in model.objects.only("pk", *fields).iterator(chunk_size=500):
        changed = repaired_fields(obj, fields)
        if changed:
            model.objects.filter(pk=obj.pk).update(**changed)
            count += 1
    return count
