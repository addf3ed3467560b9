"""Secrets stay secret: every secret value shop360 resolves is registered here, and from then on
masked in every log record this process creates (dlt's, dbt's, Dagster's and our own) and in the
messages of errors leaving an asset.

This is the second line of defence. The first: credentials travel in auth objects that request
logs do not print, errors name the setting (``sources.shopify.access_token``), never its value,
and nothing writes a secret into the warehouse or Dagster metadata.
"""

from __future__ import annotations

import logging
import threading

MASK = "[redacted]"
# shorter values would mask innocent text; every real token and key is far longer
MIN_SECRET_LENGTH = 8

_secrets: set[str] = set()
_lock = threading.Lock()
_installed = False


def register_secret(*values: object) -> None:
    """Mask ``values`` (the non-empty strings among them) in logs and error messages from now on."""
    new = {str(value) for value in values if value and len(str(value)) >= MIN_SECRET_LENGTH}
    if new:
        with _lock:
            _secrets.update(new)
        _install_log_redaction()


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``, longest first."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_error(error: BaseException) -> BaseException:
    """``error`` and the errors it was raised from, with secrets masked in their messages (in place)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in current.args)
        current = current.__cause__ or current.__context__
    return error


def _install_log_redaction() -> None:
    """Wrap the log record factory once: every record's message is rendered and masked at creation."""
    global _installed
    with _lock:
        if _installed:
            return
        create_record = logging.getLogRecordFactory()

        def redacting_factory(*args, **kwargs) -> logging.LogRecord:
            record = create_record(*args, **kwargs)
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # a malformed call: leave it to the logging machinery
                return record
            masked = redact(message)
            if masked != message:
                record.msg, record.args = masked, None
            return record

        logging.setLogRecordFactory(redacting_factory)
        _installed = True
