"""The warehouse's naming convention: dlt's snake_case, except that a run of capitals stays whole.

Bitrix24 names a user field `UF_CRM_` plus a generated suffix (`UF_CRM_64A29A1CD5CC2`, or `ufCrm5_64A29A1CD5CC2`
on crm.item types). dlt's snake_case breaks a word at every digit followed by a capital, so the column became
`uf_crm_64_a29_a1_cd5_cc2`, a name nobody can find in the portal's settings. Here only a lowercase letter followed
by a capital breaks a word (camelCase), and the column is `uf_crm_64a29a1cd5cc2`: the code in lower case.

Every other name comes out as snake_case makes it (`STAGE_ID` -> `stage_id`, `assignedById` -> `assigned_by_id`,
`UF_CRM_1699000001` -> `uf_crm_1699000001`). A warehouse made with snake_case keeps it (dlt does not change a
stored schema's naming) until `pipelines/column_names.py` renames its columns.
"""

from __future__ import annotations

import re
from functools import cache
from typing import ClassVar

from dlt.common.normalizers.naming import snake_case
from dlt.common.typing import REPattern


class NamingConvention(snake_case.NamingConvention):
    """snake_case without the digit-capital break."""

    _SNAKE_CASE_BREAK_2: ClassVar[REPattern] = re.compile("([a-z])([A-Z])")

    def normalize_identifier(self, identifier: str) -> str:
        # the base class's `normalize_identifier` calls snake_case's own static helper; this one uses our breaks
        identifier = super(snake_case.NamingConvention, self).normalize_identifier(identifier)
        return _normalize(identifier, self.max_length)


@cache
def _normalize(identifier: str, max_length: int | None) -> str:
    reduced = identifier.translate(NamingConvention._TR_REDUCE_ALPHABET)
    reduced = NamingConvention.RE_NON_ALPHANUMERIC.sub("_", reduced)
    return NamingConvention.shorten_identifier(NamingConvention._to_snake_case(reduced), identifier, max_length)
