"""Bench reading (local parquet, schema errors, offline Hub) and runs (layout, seeds, resume, process split)."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.gedit import TASK_TYPES
from workbench.gedit.cli import main
from workbench.gedit.dataset import (
    BenchLoadError,
    bench_revision,
    filter_samples,
    load_bench,
    write_bench,
    write_synthetic_bench,
)
from workbench.gedit.run import (
    RunSettings,
    distributed_context,
    output_path,
    run_bench,
    sample_seed,
    shard,
)


def test_synthetic_bench_has_the_hf_schema(bench_file, bench):
    table = pq.read_table(bench_file)
    assert set(table.column_names) == {
        "task_type",
        "key",
        "instruction",
        "instruction_language",
        "input_image",
        "input_image_raw",
        "Intersection_exist",
    }
    assert b"huggingface" in table.schema.metadata
    assert len(bench) == len(TASK_TYPES) * 2 * 2
    en = {s.key for s in bench if s.language == "en"}
    cn = {s.key for s in bench if s.language == "cn"}
    assert en == cn  # EN and CN rows share keys
    sample = bench[0]
    assert sample.source_image().size == (96, 64)
    assert sample.source_image(raw=False).size != sample.source_image().size


def test_folder_source_and_filters(bench_file):
    samples = load_bench(bench_file.parent)  # an HF snapshot folder holds the parquet shards
    subset = filter_samples(samples, languages=["cn"], task_types=["text_change", "ps_human"])
    assert {s.task_type for s in subset} == {"text_change", "ps_human"}
    assert {s.language for s in subset} == {"cn"}
    key = subset[0].key
    assert {s.language for s in filter_samples(samples, keys=[key])} == {"en", "cn"}
    inter = filter_samples(samples, intersection_only=True)
    assert inter and all(s.intersection for s in inter)


@pytest.mark.parametrize("writer", ["new_stream", "new_file"])
def test_arrow_files_as_datasets_writes_them(tmp_path, bench_file, bench, writer):
    table = pq.read_table(bench_file)
    path = tmp_path / "data-00000-of-00001.arrow"
    with pa.OSFile(str(path), "wb") as sink, getattr(pa.ipc, writer)(sink, table.schema) as out:
        out.write_table(table)
    assert [s.uid for s in load_bench(path)] == [s.uid for s in bench]


def test_subset_round_trips(tmp_path, bench):
    subset = filter_samples(bench, languages=["cn"], task_types=["ps_human"])
    assert load_bench(write_bench(subset, tmp_path / "subset.parquet")) == subset


def test_bench_revision_tracks_content(tmp_path, bench_file):
    copy = tmp_path / "snapshots" / ("ab" * 20) / "data" / "train.parquet"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(bench_file.read_bytes())
    assert bench_revision(copy.parent.parent) == "ab" * 20  # a Hub cache snapshot names its commit
    other = tmp_path / "plain" / "train.parquet"
    other.parent.mkdir()
    other.write_bytes(bench_file.read_bytes())
    first = bench_revision(other.parent)
    assert first.startswith("sha256:") and first == bench_revision(other.parent)
    write_synthetic_bench(other, per_type=1, seed=5)
    assert bench_revision(other.parent) != first


def test_bad_sources_fail_clearly(tmp_path, bench_file):
    with pytest.raises(BenchLoadError, match="neither an existing path"):
        load_bench(str(tmp_path / "nope.parquet"))
    table = pq.read_table(bench_file).drop_columns(["Intersection_exist"])
    pq.write_table(table, tmp_path / "broken.parquet")
    with pytest.raises(BenchLoadError, match="Intersection_exist"):
        load_bench(tmp_path / "broken.parquet")
    # Tests run with HF_HUB_OFFLINE=1: a Hub id must fail with an actionable message, not hang.
    with pytest.raises(BenchLoadError, match="Offline"):
        load_bench("stepfun-ai/GEdit-Bench")


def test_run_writes_official_layout_and_resumes(tmp_path, bench, make_editor):
    samples = filter_samples(bench, task_types=["color_alter", "subject-add"])
    editor = make_editor()
    manifest = run_bench(editor, samples, tmp_path, settings=RunSettings(seed=7), progress=False)
    assert manifest["generated"] == len(samples) and manifest["skipped_existing"] == 0
    for s in samples:
        out = output_path(tmp_path, "tiny-editor", s)
        assert out.parts[-5:] == ("tiny-editor", "fullset", s.task_type, s.language, f"{s.key}.png")
        assert out.is_file()
    written = json.loads((tmp_path / "tiny-editor" / "run_manifest.json").read_text())
    assert written["settings"]["seed"] == 7 and written["code_version"]
    assert written["seeds"][samples[0].uid] == sample_seed(7, samples[0])
    assert [c["seed"] for c in editor.calls] == [
        written["seeds"][s.uid] for s in sorted(samples, key=lambda s: s.uid)
    ]

    # Resume: delete one output, rerun -> only that one is generated again.
    victim = output_path(tmp_path, "tiny-editor", samples[3])
    before = victim.read_bytes()
    victim.unlink()
    again = make_editor()
    manifest = run_bench(again, samples, tmp_path, settings=RunSettings(seed=7), progress=False)
    assert manifest["generated"] == 1 and manifest["skipped_existing"] == len(samples) - 1
    assert victim.read_bytes() == before  # same seed -> same image


def test_seeds_do_not_depend_on_filters_or_order(bench):
    full = {s.uid: sample_seed(3, s) for s in bench}
    part = {s.uid: sample_seed(3, s) for s in reversed(filter_samples(bench, languages=["en"]))}
    assert all(full[uid] == seed for uid, seed in part.items())
    assert len(set(full.values())) == len(full)
    assert sample_seed(4, bench[0]) != sample_seed(3, bench[0])


def test_key_split_covers_everything_once(tmp_path, bench, make_editor):
    world = 3
    shards = [shard(bench, rank, world) for rank in range(world)]
    uids = [s.uid for part in shards for s in part]
    assert sorted(uids) == sorted(s.uid for s in bench) and len(uids) == len(set(uids))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    # Each "process" writes into the same tree: outputs merge by path, each rank keeps its own manifest.
    for rank in range(world):
        run_bench(make_editor(), bench, tmp_path, rank=rank, world_size=world, progress=False)
    assert len(list((tmp_path / "tiny-editor" / "fullset").rglob("*.png"))) == len(bench)
    assert len(list((tmp_path / "tiny-editor").glob("run_manifest.rank*-of-3.json"))) == world
    with pytest.raises(ValueError, match="invalid process split"):
        shard(bench, 3, 3)


def test_launcher_environment_picks_the_share():
    assert distributed_context({}) == (0, 1, None)
    rank, world, device = distributed_context({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert (rank, world) == (5, 8) and device in ("cuda:1", "cpu")


def test_editor_failure_is_recorded_and_the_run_goes_on(tmp_path, bench, make_editor):
    samples = filter_samples(bench, task_types=["color_alter"])
    bad = samples[0].instruction  # the editor crashes on this one instruction
    manifest = run_bench(make_editor(fail_on={bad}), samples, tmp_path, progress=False)
    failing = [s for s in samples if s.instruction == bad]
    assert set(manifest["failed"]) == {s.uid for s in failing}
    assert "RuntimeError: editor crashed" in manifest["failed"][failing[0].uid]
    assert manifest["generated"] == len(samples) - len(failing)
    assert not output_path(tmp_path, "tiny-editor", failing[0]).exists()


def test_make_bench_cli(tmp_path, capsys):
    out = tmp_path / "mini.parquet"
    assert main(["bench", "make-bench", "--out", str(out), "--per-type", "1"]) == 0
    assert len(load_bench(out)) == len(TASK_TYPES) * 2
