"""Reference tables generated from the code: settings, error codes, routes.

The docs build (``docs/conf.py``) writes them into ``docs/_generated/`` on every build, so
the reference pages cannot drift from the code; ``python scripts/reference.py`` prints the
settings table.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_dualtoken import errors  # noqa: E402
from flask_dualtoken.config import SETTINGS, Setting, load_settings  # noqa: E402
from flask_dualtoken.openapi import openapi_document  # noqa: E402


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def default_text(setting: Setting) -> str:
    """A setting's default as the docs show it."""
    value = setting.default
    if value is None and setting.fallback is not None:
        return f"`{setting.fallback}`"
    if value is None:
        return "none"
    if isinstance(value, timedelta):
        return f"{value.days} days"
    if isinstance(value, tuple):
        return "`[]`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`" if isinstance(value, bool) else str(value)


def settings_reference() -> list[tuple[str, str, str]]:
    """Every setting as (key, default, meaning), in the order of ``config.SETTINGS``."""
    return [(s.key, default_text(s), s.help) for s in SETTINGS]


def settings_table() -> str:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    rows += [
        f"| `{key}` | {default} | {_cell(meaning)} |"
        for key, default, meaning in settings_reference()
    ]
    return "\n".join(rows) + "\n"


def errors_table() -> str:
    classes = sorted(
        {
            cls
            for cls in vars(errors).values()
            if isinstance(cls, type)
            and issubclass(cls, errors.DualTokenError)
            and cls is not errors.DualTokenError
        },
        key=lambda cls: (cls.code or 0, cls.error),
    )
    rows = ["| status | `error` | meaning |", "|---|---|---|"]
    rows += [f"| {cls.code} | `{cls.error}` | {_cell(cls.description or '')} |" for cls in classes]
    return "\n".join(rows) + "\n"


def routes_table(**config: object) -> str:
    settings = load_settings({"DUALTOKEN_SECRET_KEY": "x" * 32, **config})
    document = openapi_document(settings)
    rows = ["| route | what it does | answers |", "|---|---|---|"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = ", ".join(sorted(operation["responses"]))
            rows.append(f"| `{method.upper()} {path}` | {operation['summary']} | {answers} |")
    return "\n".join(rows) + "\n"


def write_generated(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.md").write_text(settings_table())
    (folder / "errors.md").write_text(errors_table())
    (folder / "routes.md").write_text(routes_table(DUALTOKEN_TOKEN_LOCATION="both"))  # noqa: S106


if __name__ == "__main__":
    print(settings_table())
