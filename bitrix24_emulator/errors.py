"""The error a method raises to produce Bitrix24's error envelope.

`code` is a string (`QUERY_LIMIT_EXCEEDED`), an empty string (legacy CRM methods) or an integer (new-style
controllers such as crm.item.payment.*), exactly as the real portal sends it.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, code: str | int, description: str, status: int = 400, extra: dict[str, Any] | None = None):
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.status = status
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description, **self.extra}


def not_found_legacy() -> ApiError:
    return ApiError("", "Not found", 400)


def missing_parameter(name: str) -> ApiError:
    return ApiError(100, f"Could not find value for parameter {{{name}}}", 400)
