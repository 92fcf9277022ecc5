"""The analyses notebook runs end to end against freshly synced data, so it cannot rot: a sync of the
emulator into a temporary DuckDB file, then every cell executed in a real Jupyter kernel (the venv's own
Python, ipykernel's inline backend rendering with Agg, no display) pointed at that file."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from bitrix24_emulator import Portal
from pipelines.runner import DATASET_NAME
from tests.e2e.syncutil import SMALL_PORTAL, new_pipeline, run

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "crm_analyses.ipynb"
PLOTS = (
    "Sales funnel",
    "Won revenue by month",
    "Leads by source",
    "Payments received by month",
    "Time in each stage",
    "Treatments sold",
)


def test_the_notebook_runs_on_freshly_loaded_data_and_draws_its_charts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = new_pipeline(tmp_path, "duckdb")
    with Portal(**SMALL_PORTAL) as portal:
        run(pipeline, portal)

    monkeypatch.setenv("BITRIX24_DUCKDB", str(tmp_path / "warehouse.duckdb"))
    monkeypatch.setenv("BITRIX24_DATASET", DATASET_NAME)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend: PNGs in the outputs
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells), "commit the notebook without outputs"
    client = NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",  # ipykernel's native spec: runs sys.executable, this venv's Python
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell

    figures: dict[str, int] = {}
    section = ""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            section = cell.source.splitlines()[0][3:]
        for output in cell.get("outputs", []):
            assert output.output_type != "error"
            if "image/png" in output.get("data", {}):
                figures[section] = figures.get(section, 0) + 1
    assert len(figures) == len(PLOTS) and all(any(s.startswith(p) for s in figures) for p in PLOTS), figures
