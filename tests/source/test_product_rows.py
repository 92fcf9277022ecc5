"""Product rows are read per group of owners: 200 owners a chain, across the pages of the owner id scan."""

from __future__ import annotations

from collections.abc import Iterator

from sources.bitrix24.catalog import Catalog
from sources.bitrix24.paging import MAX_FILTER_IDS, ListQuery, Page
from sources.bitrix24.plan import SYNC_DEFAULTS
from sources.bitrix24.product_rows import GROUP_OWNERS, ProductRowReader


class ScanPages:
    """What the plan serves a reader for its owner scan: pages of 50 ids (the last one short)."""

    def __init__(self, owners: int):
        self.ids = list(range(1, owners + 1))

    def chain_pages(self, key: str, query: ListQuery, prefix: str) -> Iterator[Page]:
        for start in range(0, len(self.ids), 50):
            yield [{"ID": str(i)} for i in self.ids[start : start + 50]]


def test_owners_are_grouped_by_200_across_the_pages_of_their_scan() -> None:
    deals = Catalog.for_portal(()).entity("deals")
    reader = ProductRowReader(None, SYNC_DEFAULTS, [deals])  # type: ignore[arg-type]
    reader.sweep = True  # a sweep's owner scan has no window, so no cursor to read from dlt's state
    groups = list(reader._groups(ScanPages(470), deals))  # type: ignore[arg-type]
    assert GROUP_OWNERS == 200 <= MAX_FILTER_IDS and [len(ids) for (_, ids), _ in groups] == [200, 200, 70]
    assert [i for (_, ids), _ in groups for i in ids] == list(range(1, 471))  # none lost at a page boundary
    for (_, ids), query in groups:
        assert query.method == "crm.item.productrow.list"
        assert query.params["filter"] == {"=ownerType": "D", "=ownerId": ids}
    assert list(reader._groups(ScanPages(0), deals)) == []  # type: ignore[arg-type]
