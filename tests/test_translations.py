"""The English catalog: complete, well formed, and in step with the Japanese source strings.

Japanese is the source language: every string in ``_()``/``gettext``/``_l`` (Python) and
``{{ _('...') }}`` (Jinja, pages and emails) is a msgid, and
``app/translations/en/LC_MESSAGES/messages.po`` must give each one an English msgstr.

When ``test_every_source_string_has_an_english_translation`` fails after you added or changed
a Japanese string:

    .venv/bin/pybabel extract -F babel.cfg -k _l -o app/translations/messages.pot .
    .venv/bin/pybabel update -N -i app/translations/messages.pot -d app/translations

then write the English msgstr of each new entry in the .po (``-N``: no fuzzy guesses), and
``.venv/bin/pybabel compile -d app/translations`` to see it in the running app.

These tests read files only (no app, database or Redis) and take well under a second.
"""
import functools
import gettext
import re
from pathlib import Path

import pytest
from babel.messages import frontend
from babel.messages.catalog import PYTHON_FORMAT
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
BABEL_CFG = ROOT / "babel.cfg"
TRANSLATIONS = ROOT / "app" / "translations"
EN_PO = TRANSLATIONS / "en" / "LC_MESSAGES" / "messages.po"
#: ``pybabel extract -k _l``: lazy_gettext is imported as ``_l``.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None}
#: Hiragana, katakana, CJK ideographs, full-width forms: a msgstr with these was not translated.
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff01-\uff60\u3000-\u303f]")


def _load(path: Path):
    with path.open("rb") as f:
        return read_po(f, locale="en", abort_invalid=True)


@pytest.fixture(scope="module")
def en_catalog():
    return _load(EN_PO)


def _entries(catalog):
    return [m for m in catalog if m.id]


def _placeholders(text: str) -> set[tuple[str, str]]:
    """``%(name)s`` style placeholders as (name, spec); ``%%`` is not one."""
    return {(name, flags + conversion) for name, flags, conversion in PYTHON_FORMAT.findall(text)
            if conversion != "%"}


class _AnyValue(dict):
    """Format values for any placeholder name: ``1`` works for %s and %d alike."""

    def __missing__(self, key):
        return 1


def _formats(text: str) -> bool:
    try:
        text % _AnyValue()
    except (TypeError, ValueError, KeyError):
        return False
    return True


@functools.cache
def _source_msgids() -> dict[str, list[str]]:
    """Extract now, with babel.cfg, exactly as ``pybabel extract -F babel.cfg -k _l`` does."""
    parse = getattr(frontend, "parse_mapping_cfg", None)
    with BABEL_CFG.open(encoding="utf-8") as f:
        method_map, options_map = parse(f) if parse else frontend.parse_mapping(f)
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        assert context is None, f"{filename}:{lineno}: message contexts (pgettext) are not set up"
        for msgid in (message if isinstance(message, tuple) else (message,)):
            if msgid:
                found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


def test_extraction_finds_python_lazy_and_template_strings():
    """Guards babel.cfg itself: each kind of source is really scanned."""
    locations = {loc for locs in _source_msgids().values() for loc in locs}
    assert any(loc.startswith("app/templates/") and ".html:" in loc for loc in locations)
    assert any(loc.startswith("app/templates/email/") and ".txt:" in loc for loc in locations)
    assert any("/forms.py:" in loc for loc in locations)  # lazy_gettext as _l
    assert any("/routes.py:" in loc for loc in locations)  # gettext as _


def test_every_source_string_has_an_english_translation(en_catalog):
    source = _source_msgids()
    missing = {msgid: locs for msgid, locs in source.items() if msgid not in en_catalog}
    report = "\n".join(f"  {msgid!r}  ({', '.join(locs[:3])})" for msgid, locs in sorted(missing.items()))
    assert not missing, (
        f"{len(missing)} Japanese string(s) have no entry in {EN_PO.relative_to(ROOT)}; "
        f"re-extract, update and translate them (see this file's docstring):\n{report}"
    )


def test_every_entry_is_translated_and_not_fuzzy(en_catalog):
    assert not en_catalog.fuzzy, "the catalog header is marked fuzzy"
    assert str(en_catalog.locale) == "en"
    problems = []
    for m in _entries(en_catalog):
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        if not all(s and s.strip() for s in strings):
            problems.append(f"  untranslated: {m.id!r}")
        if m.fuzzy:
            problems.append(f"  fuzzy (check the English, then drop the flag): {m.id!r}")
    assert not problems, "\n".join([f"{EN_PO.relative_to(ROOT)}:", *problems])


def test_english_strings_contain_no_japanese(en_catalog):
    left = [(m.id, m.string) for m in _entries(en_catalog) if JAPANESE.search(str(m.string))]
    assert not left, "msgstr still in Japanese:\n" + "\n".join(f"  {i!r} -> {s!r}" for i, s in left)


def test_placeholders_match(en_catalog):
    wrong = []
    for m in _entries(en_catalog):
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        expected = set().union(*(_placeholders(i) for i in ids))
        if expected and "python-format" not in m.flags:
            wrong.append(f"  {m.id!r}: has placeholders but is not flagged python-format")
        # Strings with placeholders are %-formatted, and so is every template string (Jinja's
        # new-style gettext always applies ``%``); a Python string without any is used as is.
        formatted = bool(expected) or any(path.startswith("app/templates/") for path, _ in m.locations)
        for s in strings:
            if not formatted:
                if any(name for name, _spec in _placeholders(s)):
                    wrong.append(f"  {m.id!r} -> {s!r}: placeholder in a string that is never formatted")
                continue
            if _placeholders(s) != expected:
                wrong.append(f"  {m.id!r}: {sorted(expected)} -> {s!r}: {sorted(_placeholders(s))}")
            if all(_formats(i) for i in ids) and not _formats(s):
                wrong.append(f"  {m.id!r} -> {s!r}: not a valid %-format string (write %% for a literal %)")
    assert not wrong, "placeholder mismatches:\n" + "\n".join(wrong)


def test_babel_checkers_pass(en_catalog):
    problems = [(m.id, [str(e) for e in errors]) for m, errors in en_catalog.check()]
    assert not problems, problems


def test_catalog_compiles_and_translates(tmp_path, en_catalog):
    mo = tmp_path / "messages.mo"
    with mo.open("wb") as f:
        write_mo(f, en_catalog)
    with mo.open("rb") as f:
        translations = gettext.GNUTranslations(f)
    assert translations.gettext("ログイン") == "Log in"
    assert translations.gettext("%(name)s 様") % {"name": "Alex"} == "Dear Alex,"
    for m in _entries(en_catalog):
        assert translations.gettext(m.id) == m.string
