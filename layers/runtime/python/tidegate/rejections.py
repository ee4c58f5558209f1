"""Why a record could not be aggregated: the reasons carried to the dead-letter queue."""

from __future__ import annotations

# Reasons are a public, stable vocabulary: alarms, `tidegate dlq` and users filter on them.
INVALID_BASE64 = "invalid_base64"
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
SCHEMA_VIOLATION = "schema_violation"
INVALID_TIMESTAMP = "invalid_timestamp"
FUTURE_TIMESTAMP = "future_timestamp"
KEY_TOO_LARGE = "key_too_large"
RECORD_TOO_LARGE = "record_too_large"
INVALID_AVRO = "invalid_avro"
UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
LATE = "late"


class Rejected(Exception):  # noqa: N818 - reads as a verdict: `raise Rejected(...)`
    """A record that can never be aggregated, whatever the retry; goes to the DLQ."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
