"""The cost of the uploads that are read whole is bounded by their lower cap
(the max_whole_file_dataset_bytes setting): a CoNLL file of two-letter tokens, the
costliest shape per byte measured, is checked through POST /v1/datasets in memory linear in
the file, at most 16 bytes per byte (so at most 256 MiB at the 16 MiB cap: 237 MB measured
there, 28 s under tracemalloc, hence a quarter of the cap here), and a file one byte over the
cap is refused before it is read."""

from __future__ import annotations

import gc
import tracemalloc

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.settings import Settings
from tests.app.conftest import count_rows

WHOLE_FILE_MAX_BYTES = Settings.model_fields["max_whole_file_dataset_bytes"].default

MAX_BYTES_PER_BYTE = 16
SENTENCE = b"ab O\n" * 28 + b"ab B-X\nab I-X\n\n"


def conll_of(size: int) -> bytes:
    body = SENTENCE * (size // len(SENTENCE))
    return body + b"\n" * (size - len(body))


def test_a_hostile_conll_file_costs_memory_linear_in_its_size(client: TestClient) -> None:
    data = conll_of(WHOLE_FILE_MAX_BYTES // 4)
    gc.collect()
    tracemalloc.start()
    try:
        r = client.post("/v1/datasets", files={"file": ("big.conll", data)},
                        data={"task": "token_classification"})  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.status_code == 201, r.text
    assert r.json()["num_rows"] == len(data) // len(SENTENCE)
    # The file itself is in memory twice (the test's bytes and the request's), besides the check.
    assert (peak - 2 * len(data)) / len(data) < MAX_BYTES_PER_BYTE, peak


def test_a_file_over_the_cap_is_refused_unread(client: TestClient, db_session: Session) -> None:
    before = count_rows(db_session)
    r = client.post("/v1/datasets", files={"file": ("big.conll", b"a O\n" * 2 + b"\n" *
                                                    (WHOLE_FILE_MAX_BYTES - 7))},
                    data={"task": "token_classification"})  # fmt: skip
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large", r.text
    assert f"larger than {WHOLE_FILE_MAX_BYTES} bytes" in r.json()["detail"]
    assert count_rows(db_session) == before
