"""The result store on its own: the writer lock, and the migration of files written by older rdbench."""

import csv
import re

import numpy as np
import pytest
from PIL import Image

from rdbench.bench.runner import load_codecs, run
from rdbench.bench.store import COLUMNS, RESULTS_FILE, ResultStore, StoreError, read_results, row_key
from rdbench.data.datasets import folder_dataset

# the columns an older rdbench wrote: no estimated bpp, no luma PSNR, no note
DROPPED = ("bpp_estimated", "psnr_y", "note")
OLD_COLUMNS = tuple(c for c in COLUMNS if c not in DROPPED)
QUALITIES = [30, 60]
CODECS = ["jpeg"]


def read_table(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        return next(reader), list(reader)


def write_table(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="module")
def measured(tmp_path_factory, kodim):
    """A real run (jpeg on two Kodak crops and one broken file): its dataset and its rows as text."""
    images = tmp_path_factory.mktemp("images")
    for n in (5, 17):
        Image.fromarray(np.ascontiguousarray(kodim(n)[:128, :192])).save(images / f"kodim{n:02d}.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # an error row, with a message
    out = tmp_path_factory.mktemp("run")
    run(folder_dataset(images), load_codecs(CODECS), out, qualities=QUALITIES, workers=1, progress=False)
    header, rows = read_table(out / RESULTS_FILE)
    assert tuple(header) == COLUMNS
    return images, [dict(zip(header, r)) for r in rows]


@pytest.fixture
def old_store(tmp_path, measured):
    """A store directory whose results.csv has the older column set and the measured rows."""
    _, rows = measured
    write_table(tmp_path / RESULTS_FILE, OLD_COLUMNS, [[r[c] for c in OLD_COLUMNS] for r in rows])
    return tmp_path


def test_second_writer_is_refused(tmp_path):
    with ResultStore(tmp_path):
        second = ResultStore(tmp_path)
        with pytest.raises(StoreError, match=rf"^{re.escape(str(tmp_path))}: another rdbench run is writing this result store$"):
            second.open()
        second.close()


def test_older_columns_are_migrated_keeping_every_value(old_store, measured):
    images, rows = measured
    _, old_rows = read_table(old_store / RESULTS_FILE)
    assert {r["status"] for r in rows} == {"ok", "error"} and any(r["psnr_y"] for r in rows)
    assert any("," in r["error"] or " " in r["error"] for r in rows if r["status"] == "error")

    with ResultStore(old_store) as store:
        assert store.done_keys() == {row_key(r) for r in rows}
    header, new_rows = read_table(old_store / RESULTS_FILE)
    assert tuple(header) == COLUMNS  # every current column, in the current order
    assert len(new_rows) == len(old_rows) == len(rows)
    for old, new in zip(old_rows, new_rows):
        new = dict(zip(header, new))
        assert [new[c] for c in OLD_COLUMNS] == old  # the same text, not a re-parsed number
        assert [new[c] for c in DROPPED] == ["", "", ""]
    assert not list(old_store.glob("*.migrating"))
    migrated = (old_store / RESULTS_FILE).read_bytes()

    # a rerun of the same grid finds every key stored and measures nothing
    again = run(folder_dataset(images), load_codecs(CODECS), old_store, qualities=QUALITIES, workers=1, progress=False)
    assert (again.ok, again.failed, again.skipped) == (0, 0, len(rows))
    assert (old_store / RESULTS_FILE).read_bytes() == migrated  # already current: not rewritten again
    df = read_results(old_store)
    assert len(df) == len(rows) and df["psnr_y"].isna().all()


def test_unknown_columns_are_refused_and_nothing_is_lost(tmp_path, measured):
    _, rows = measured
    header = (*OLD_COLUMNS[:5], "psnr_future", *OLD_COLUMNS[5:], "metric_from_2030")
    write_table(tmp_path / RESULTS_FILE, header, [[r.get(c, "1.5") for c in header] for r in rows])
    before = (tmp_path / RESULTS_FILE).read_bytes()
    path = re.escape(str(tmp_path / RESULTS_FILE))
    with pytest.raises(StoreError, match=rf"^{path}: unknown columns \['metric_from_2030', 'psnr_future'\]"):
        ResultStore(tmp_path).open()
    assert (tmp_path / RESULTS_FILE).read_bytes() == before
    assert not list(tmp_path.glob("*.migrating")) and not list(tmp_path.glob("*.csv.*"))


def test_a_refused_store_releases_its_lock(tmp_path):
    (tmp_path / RESULTS_FILE).write_text(",".join((*COLUMNS, "psnr_future")) + "\n")
    with pytest.raises(StoreError, match="unknown columns") as refused:
        ResultStore(tmp_path).open()
    # the user fixes the file and tries again while the error is still at hand (a notebook, a retry loop)
    (tmp_path / RESULTS_FILE).write_text(",".join(COLUMNS) + "\n")
    with ResultStore(tmp_path) as store:
        assert len(store) == 0 and not store.keys
    assert refused.value


def test_migration_keeps_malformed_lines_aside(old_store, measured):
    _, rows = measured
    path = old_store / RESULTS_FILE
    with open(path, "a", encoding="utf-8") as f:
        f.write("kodim99.png,only,three fields\n")  # neither a row nor a torn line: a hand edit
    with ResultStore(old_store) as store:
        assert len(store) == len(rows) and store.dropped_lines == 1
    header, kept = read_table(old_store / (RESULTS_FILE + ".rejected"))
    assert tuple(header) == OLD_COLUMNS and kept == [["kodim99.png", "only", "three fields"]]
    assert tuple(read_table(path)[0]) == COLUMNS
