"""The authors' 2023 sampling (erasure/analysis/authors_sampling.py) against the rows `datasets==2.14.4` itself yielded.

The fixture was written by scripts/sampling_2023_fixture.py, which ran the authors' call with the 2023 library
through the stand-in Hub and never calls our sampler. Here the same shards are rebuilt (seeded, same bytes) and
our sampler must yield exactly the fixture's marker ids, in order.
"""
import itertools
import json
from dataclasses import asdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from erasure.analysis.authors_sampling import iter_parquet_rows, shuffled_rows_2023
from scripts.build_hub_fixtures import GELU4L_DATASETS, write_token_shards

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "sampling_2023.json").read_text())
MARKER = FIXTURE["marker_position"]


def _markers(shards, seed, buffer_size, n):
    rows = shuffled_rows_2023(shards, iter_parquet_rows, seed=seed, buffer_size=buffer_size)
    return [row[MARKER] for row in itertools.islice(rows, n)]


def test_fixture_comes_from_datasets_2_14_4():
    assert FIXTURE["library_versions"]["datasets"] == "2.14.4"
    assert len(FIXTURE["configurations"]) >= 4


@pytest.mark.parametrize("config", FIXTURE["configurations"], ids=lambda config: config["name"])
def test_sampler_equals_datasets_2_14_4(config, tmp_path):
    paths = write_token_shards(tmp_path, **config["shards"])
    names = sorted(path.name for path in paths)  # the order datasets 2.14 listed the repo's data/train-* files
    assert names == config["shard_files"], "the shard writer no longer makes the fixture's files: rerun the script"
    markers = _markers([tmp_path / "data" / name for name in names], config["seed"], config["buffer_size"], config["n"])
    assert markers == config["markers"]


def test_fixture_covers_the_stand_in_datasets():
    """The end-to-end test streams the stand-in's default datasets; the fixture must hold exactly those shards."""
    by_repo = {config["repo_id"]: config for config in FIXTURE["configurations"]}
    for repo_id, spec in GELU4L_DATASETS.items():
        assert by_repo[repo_id]["shards"] == asdict(spec)


def _take_recording_opens(shards, n):
    opened = []

    def read_rows(shard):
        opened.append(shard[0][0])
        return iter(shard)

    return list(itertools.islice(shuffled_rows_2023(shards, read_rows, seed=5235, buffer_size=10), n)), opened


def test_only_the_shards_the_rows_need_are_opened():
    """4 shards x 20 rows, buffer 10: 10 rows need 20 stream rows, i.e. the first shard only; 11 rows need two."""
    shards = [[(shard, row) for row in range(20)] for shard in range(4)]
    for n, n_opened in ((10, 1), (11, 2)):
        rows, opened = _take_recording_opens(shards, n)
        assert len(rows) == n and len(opened) == n_opened
        assert {shard for shard, _ in rows} == {opened[0]}


def test_another_seed_gives_another_order(tmp_path):
    paths = sorted(write_token_shards(tmp_path, 3, 40, seed=0, marker_base=100, vocab_size=1000, row_group_size=8))
    first, other = _markers(paths, 5235, 10, 30), _markers(paths, 5236, 10, 30)
    assert len(set(first)) == len(set(other)) == 30 and first != other


def test_parquet_rows_come_in_file_order_across_row_groups(tmp_path):
    (path,) = write_token_shards(tmp_path, 1, 70, seed=0, marker_base=500, vocab_size=1000, row_group_size=16)
    assert pq.ParquetFile(path).num_row_groups == 5
    assert [row[MARKER] for row in iter_parquet_rows(path)] == list(range(500, 570))


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="buffer_size"):
        next(shuffled_rows_2023([[1]], iter, seed=0, buffer_size=0))
    with pytest.raises(ValueError, match="seed"):
        next(shuffled_rows_2023([[1]], iter, seed=-1, buffer_size=10))
    pq.write_table(pa.table({"text": ["a"]}), tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="no column 'tokens'"):
        next(iter_parquet_rows(tmp_path / "x.parquet"))
