"""The teacher's output cache: filled once per item list in a canonical pass, exact on a hit,
bounded, and the same whatever the training order (what a resumed job relies on)."""

from __future__ import annotations

from typing import Any

import torch

from tests.factories.tiny_bert import sentiment_rows
from worker.pipelines.data import Example
from worker.pipelines.inference import task_batches
from worker.pipelines.tasks.base import model_inputs, output_tensors
from worker.pipelines.tasks.classification import TASK
from worker.pipelines.teacher import Teacher

CPU = torch.device("cpu")


def _items(n: int = 20) -> list[Example]:
    return [Example(t, None, y) for t, y in sentiment_rows(n, seed=4)]


def _batches(tokenizer: Any, items: list[Example], order: list[int]) -> list[Any]:
    return list(task_batches(TASK, tokenizer, items, 6, 32, CPU, order))


def test_a_hit_gives_the_canonical_fill_whatever_the_order(tiny_model: Any, tokenizer: Any) -> None:
    items = _items()
    teacher = Teacher(tiny_model, TASK, max_bytes=1 << 20, fill_batch_size=8)
    teacher.bind(tokenizer, items, 32, CPU)
    assert teacher.stats.items == len(items) and not teacher.stats.full
    order = list(range(len(items)))[::-1]
    first = [teacher.outputs(ix, b)["logits"] for ix, b in _batches(tokenizer, items, order)]
    again = Teacher(tiny_model, TASK, max_bytes=1 << 20, fill_batch_size=8)
    again.bind(tokenizer, items, 32, CPU)  # as a resumed job does
    shuffled = [5, 17, 0, 3, 11, 8, 19, 1, 2, 4, 6, 7, 9, 10, 12, 13, 14, 15, 16, 18]
    by_item = {}
    for ix, b in _batches(tokenizer, items, shuffled):
        for i, row in zip(ix, again.outputs(ix, b)["logits"], strict=True):
            by_item[i] = row
    flat = [row for rows in first for row in rows]
    for pos, i in enumerate(order):
        assert torch.equal(flat[pos], by_item[i])  # bit-identical, not just close
    assert teacher.stats.misses == 0 and teacher.stats.hits == len(first)
    # and they are the teacher's outputs (to float rounding of another padding)
    ix, b = _batches(tokenizer, items, order)[0]
    direct = output_tensors(TASK, tiny_model(**model_inputs(b)))["logits"]
    assert torch.allclose(first[0], direct, atol=1e-5)


def test_a_bounded_cache_keeps_what_fits_and_runs_the_rest(tiny_model: Any, tokenizer: Any) -> None:
    items = _items()
    row_bytes = 2 * 4  # two float32 logits an item
    teacher = Teacher(tiny_model, TASK, max_bytes=8 * row_bytes + 3, fill_batch_size=4)
    teacher.bind(tokenizer, items, 32, CPU)
    assert teacher.stats.full and teacher.stats.items == 8 and teacher.stats.bytes == 64
    batches = list(task_batches(TASK, tokenizer, items, 4, 32, CPU))
    teacher.outputs(*batches[0])  # items 0-3: cached
    teacher.outputs(*batches[3])  # items 12-15: run
    assert (teacher.stats.hits, teacher.stats.misses) == (1, 1)


def test_no_cache_runs_every_batch_and_a_new_item_list_starts_afresh(
    tiny_model: Any, tokenizer: Any
) -> None:
    items = _items()
    off = Teacher(tiny_model, TASK, max_bytes=0)
    off.bind(tokenizer, items, 32, CPU)
    assert off.stats.items == 0 and not off.stats.enabled
    on = Teacher(tiny_model, TASK, max_bytes=1 << 20)
    on.bind(tokenizer, items, 32, CPU)
    on.bind(tokenizer, items, 32, CPU)  # the same list: kept
    assert on.stats.items == len(items)
    on.bind(tokenizer, items[:5], 32, CPU)
    assert on.stats.items == 5
