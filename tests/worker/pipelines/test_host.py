from pathlib import Path

import pytest

from worker.pipelines.host import cpu_info, describe, host_int8_reduced_range, int8_reduced_range

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_vnni avx512_bf16

processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_vnni avx512_bf16
"""


def test_cpu_info_reads_the_model_and_the_int8_instructions(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO, encoding="utf-8")
    info = cpu_info(1, path)
    assert info["model"] == "AMD EPYC 9R14"
    assert info["threads"] == 1 and info["cores"] is not None
    # slowest first; flags unrelated to int8 (avx512_bf16, sse2) are left out
    assert info["int8_instructions"] == ["avx2", "avx512f", "avx512bw", "avx512_vnni"]
    line = describe(info)
    assert line.startswith("AMD EPYC 9R14, ") and "timed at 1 thread(s)" in line
    assert line.endswith("int8 instructions: avx2, avx512f, avx512bw, avx512_vnni")


def test_an_avx2_only_cpu_lists_no_vnni(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text("model name\t: Intel Xeon\nflags\t: sse2 avx avx2 fma\n", encoding="utf-8")
    assert cpu_info(2, path)["int8_instructions"] == ["avx2"]


def test_an_arm_cpu_lists_its_dot_product_extensions(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm sve\n", encoding="utf-8")
    assert cpu_info(4, path)["int8_instructions"] == ["asimddp", "i8mm"]


def test_a_cpu_without_any_says_so(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text("model name\t: Old\nflags\t: sse2 avx\n", encoding="utf-8")
    assert describe(cpu_info(1, path)).endswith("int8 instructions: none of avx2, avx512f, "
                                                "avx512bw, avx_vnni, avx512_vnni, amx_int8, "
                                                "asimddp, i8mm")  # fmt: skip


def test_an_unreadable_cpuinfo_still_names_the_machine(tmp_path: Path) -> None:
    info = cpu_info(2, tmp_path / "missing")
    assert info["int8_instructions"] is None and info["model"]
    assert describe(info).endswith("int8 instructions: unknown")
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: Some VM\n", encoding="utf-8")  # no flags
    info = cpu_info(2, path)
    assert info["model"] == "Some VM" and info["int8_instructions"] is None


@pytest.mark.parametrize(
    ("flags", "reduced"),
    [
        (["avx2"], True),  # vpmaddubsw: u8 x s8 pairs summed in int16 saturate at 8 bits
        (["avx2", "avx512f", "avx512bw"], True),
        (["avx2", "avx512f", "avx512bw", "avx512_vnni"], False),
        (["avx2", "avx_vnni"], False),
        (["avx2", "amx_int8"], False),
        (["asimddp", "i8mm"], False),
        ([], False),
        (None, False),  # not known: ONNX Runtime's default
    ],
)
def test_int8_weights_are_7_bit_only_where_the_cpu_would_saturate(
    flags: list[str] | None, reduced: bool
) -> None:
    assert int8_reduced_range(flags) is reduced


def test_the_host_decision_reads_cpuinfo(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text("model name\t: Intel Xeon\nflags\t: sse2 avx avx2 fma\n", encoding="utf-8")
    assert host_int8_reduced_range(path) is True
    path.write_text(CPUINFO, encoding="utf-8")
    assert host_int8_reduced_range(path) is False
