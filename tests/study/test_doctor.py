"""``study doctor``: the local checks, and on a two-node cluster what every node sees."""

import ray
from ray.cluster_utils import Cluster

from study.cli import main


def test_doctor_passes_locally_and_names_each_check(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    assert main(["doctor", "--tracking-uri", uri, "--storage-path", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out[:5]] == [
        "✓ tracking store", "✓ storage", "✓ ray", "✓ devices", "✓ datasets",
    ]  # fmt: skip
    assert out[-1] == "all checks passed"
    assert not (tmp_path / "mlruns.db").exists() and not (tmp_path / "r").exists()


def test_doctor_fails_with_the_fix_when_the_store_does_not_answer(tmp_path, capsys):
    argv = ["doctor", "--tracking-uri", "http://127.0.0.1:1", "--address", "127.0.0.1:1"]
    assert main([*argv, "--storage-path", str(tmp_path / "r")]) == 1
    out = capsys.readouterr().out
    assert "✗ tracking store: http://127.0.0.1:1 does not answer" in out
    assert "✗ ray: 127.0.0.1:1 does not answer" in out and "3 of 5 checks passed" in out


def test_on_a_cluster_every_node_sees_the_shared_storage_and_the_store(tmp_path, capsys):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    argv = ["doctor", "--address", cluster.address, "--tracking-uri", uri]
    try:
        assert main([*argv, "--storage-path", str(tmp_path / "shared")]) == 0
    finally:
        ray.shutdown()
        cluster.shutdown()
    out = capsys.readouterr().out
    storage = [line for line in out.splitlines() if line.endswith("2 of 2 nodes")]
    assert len(storage) == 2 and all(line.startswith("✓ node ") for line in storage)
    assert out.count("GPUs: 0 visible") == 2 and "all checks passed" in out
