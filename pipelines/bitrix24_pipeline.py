"""Using the `bitrix24` source directly with dlt, the way dlt's verified sources ship an example (no CLI, no
runner): configure the credential, make a pipeline, run the source.

    export SOURCES__BITRIX24__CREDENTIALS="https://your-portal.bitrix24.com/rest/1/<code>/"
    python pipelines/bitrix24_pipeline.py              # everything into ./bitrix24.duckdb
    python pipelines/bitrix24_pipeline.py deals,leads  # some resources

What the CLI adds on top (`bitrix24-sync run`): a lock against concurrent runs, crash repair, SQL views, deletes by
reconciliation, the run log for `status`, one-line errors. The data, cursors and types are the same.
"""

from __future__ import annotations

import sys

import dlt

from sources.bitrix24 import bitrix24


def load_crm(resources: list[str] | None = None) -> dlt.Pipeline:
    """Every resource (or `resources`) into DuckDB; incremental from the second run on."""
    pipeline = dlt.pipeline(
        pipeline_name="bitrix24_example",
        destination=dlt.destinations.duckdb("bitrix24.duckdb"),
        dataset_name="bitrix24_crm",  # must differ from the pipeline name (a DuckDB catalog/schema clash)
    )
    info = pipeline.run(bitrix24(resources=resources), loader_file_format="parquet")
    print(info)
    return pipeline


def show_deals_per_stage(pipeline: dlt.Pipeline) -> None:
    """The loaded data through dlt's dataset interface."""
    deals = pipeline.dataset()["deals"].select("stage_id").df()
    print(deals.groupby("stage_id").size().sort_values(ascending=False).to_string())


if __name__ == "__main__":
    chosen = sys.argv[1].split(",") if len(sys.argv) > 1 else None
    show_deals_per_stage(load_crm(chosen))
