"""A sweep on a two-node Ray cluster started on this machine: trials land on both nodes."""

import ray
import yaml
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from analysis.schema import KIND_TAG
from study.cli import main


def test_trials_land_on_both_nodes_and_gpu_requests_fail_fast(tmp_path, capsys):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "cluster",
                "train": {"dataset": "digits", "model": "pgrid_cnn", "batch_size": 64},
                "budget": {"epochs": 3, "repeats": 4, "max_concurrent": 2},
                "resources": {"cpus_per_trial": 1},
            }
        )
    )
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    common = ["--address", cluster.address, "--tracking-uri", uri, "--quiet", "--no-best"]
    common += ["--storage-path", str(tmp_path / "shared_storage")]
    try:
        assert main(["sweep", str(spec), *common]) == 0
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("cluster")
        trials = client.search_runs([exp.experiment_id], f"tags.`{KIND_TAG}` = 'trial'")
        assert len(trials) == 4 and all(t.info.status == "FINISHED" for t in trials)
        nodes = {t.data.tags["node_id"] for t in trials}
        assert len(nodes) == 2

        assert main(["sweep", str(spec), *common, "--name", "gpu", "--gpus-per-trial", "0.5"]) == 2
        assert "gpus_per_trial=0.5 but the Ray cluster has no GPUs" in capsys.readouterr().err
        assert client.get_experiment_by_name("gpu") is None
    finally:
        ray.shutdown()
        cluster.shutdown()
