"""The dbt manifest dagster-dbt reads when the definitions are imported, and dbt's parse state.

dbt writes both files in place. Every process that imports the definitions reads the manifest
(a run, the CLI, `dagster dev`'s code servers), so a parse must never leave half a file where one
of them could read it: the files are written beside the kept ones and swapped in whole.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ingestion import warehouse
from orchestration.constants import DBT_EXECUTABLE, DBT_PROJECT_DIR

TARGET_DIR = DBT_PROJECT_DIR / "target"
MANIFEST_FILE = "manifest.json"
# dbt's parse state, which lets the next dbt run parse only what changed
PARTIAL_PARSE_FILE = "partial_parse.msgpack"


def swap_in(source: Path, kept: Path) -> None:
    """Replace ``kept`` by a copy of ``source`` in one step: a reader gets the old file or the new one."""
    with (
        source.open("rb") as original,
        tempfile.NamedTemporaryFile(dir=kept.parent, prefix=f".{kept.name}.", delete=False) as copy,
    ):
        shutil.copyfileobj(original, copy)
    Path(copy.name).replace(kept)


def parse_project() -> None:
    """Build the dbt manifest and parse state in a scratch target, then swap them into the project's.

    dbt starts from the kept parse state and parses only what changed. It runs with the profile a
    night's dbt has, so that dbt re-parses only what changed since too.
    """
    TARGET_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".parse-", dir=TARGET_DIR) as scratch:
        scratch_dir = Path(scratch)
        if (state := TARGET_DIR / PARTIAL_PARSE_FILE).exists():
            shutil.copyfile(state, scratch_dir / PARTIAL_PARSE_FILE)
        subprocess.run(
            [
                str(DBT_EXECUTABLE),
                "parse",
                "--quiet",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                str(scratch_dir),
            ],
            check=True,
            env={**os.environ, **warehouse.dbt_environment()},
        )
        # the parse state first: a process that reads the new manifest finds the state that goes with it
        for name in (PARTIAL_PARSE_FILE, MANIFEST_FILE):
            (scratch_dir / name).replace(TARGET_DIR / name)
