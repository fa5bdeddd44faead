"""cluster.yaml is a valid Ray cluster config with the shape README.md ("On a Ray cluster") promises.

Checked offline with Ray's own code: `ray up` runs prepare_config (merge with the provider's defaults)
and validate_config (ray-schema.json + cross-field checks) before it contacts AWS; so do these tests.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.providers import _get_default_config
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[1]
CLUSTER_YAML = REPO / "cluster.yaml"
MAX_WORKERS_LINE = re.compile(r"^max_workers: &max_gpu_workers (\d+)\b", re.MULTILINE)


def load(text: str | None = None) -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text() if text is None else text)


def ray_up_checks(config: dict[str, Any]) -> dict[str, Any]:
    """The checks `ray up` applies to a config before any cloud call; returns the prepared config."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def node_types(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(head node type, the one worker node type)."""
    types = config["available_node_types"]
    head_name = config["head_node_type"]
    workers = [spec for name, spec in types.items() if name != head_name]
    assert len(workers) == 1, f"expected one worker node type, got {len(workers)}"
    return types[head_name], workers[0]


# --- a valid config ------------------------------------------------------------------------------------


def test_cluster_yaml_passes_rays_own_validation() -> None:
    prepared = ray_up_checks(load())
    assert prepared["provider"]["type"] == "aws"


def test_nothing_is_inherited_silently_from_rays_aws_defaults() -> None:
    # prepare_config fills every missing top-level key from Ray's aws/defaults.yaml, whose setup command
    # installs a nightly Ray wheel and whose node types are m5.large: all of them must be set here.
    defaults = _get_default_config({"type": "aws"})
    missing = sorted(set(defaults) - set(load()))
    assert not missing, f"cluster.yaml leaves these to Ray's AWS defaults: {missing}"


def test_gpu_workers_autoscale_from_zero_with_one_gpu_each() -> None:
    config = load()
    head, worker = node_types(ray_up_checks(config))
    assert worker["min_workers"] == 0
    assert worker["resources"]["GPU"] == 1
    assert worker["max_workers"] == config["max_workers"] > 0
    assert worker["node_config"]["InstanceType"].split(".")[0] in {"g5", "g6", "g6e", "g4dn"}
    assert head.get("resources", {}).get("GPU", 0) == 0


def test_train_drivers_live_on_the_head_and_nothing_trains_there() -> None:
    config = load()
    head, worker = node_types(config)
    # At least one trial driver per GPU node, or some GPU nodes could never be used.
    assert head["resources"]["TRAIN_DRIVER"] >= config["max_workers"]
    # On a worker it would let a trial driver keep an expensive GPU node alive.
    assert "TRAIN_DRIVER" not in worker["resources"]
    # CPU 0: a training (CPU + GPU share) can never be scheduled on the head, only on GPU nodes.
    assert head["resources"]["CPU"] == 0


@pytest.mark.parametrize("size", [1, 7, 32])
def test_max_workers_is_set_in_one_place(size: int) -> None:
    text = CLUSTER_YAML.read_text()
    assert len(MAX_WORKERS_LINE.findall(text)) == 1
    config = load(MAX_WORKERS_LINE.sub(f"max_workers: &max_gpu_workers {size}", text))
    _, worker = node_types(ray_up_checks(config))
    assert (config["max_workers"], worker["max_workers"]) == (size, size)


def test_ray_and_python_versions_match_the_project_venv() -> None:
    config = load()
    tag = f"{ray.__version__}-py{sys.version_info.major}{sys.version_info.minor}"
    docker = config["docker"]
    assert docker["head_image"] == f"rayproject/ray:{tag}-cpu"
    assert docker["worker_image"] == f"rayproject/ray:{tag}-gpu"
    # Ray held at the image's version when pip installs the project's dependencies.
    assert f"=={ray.__version__}" in " ".join(config["setup_commands"])


def test_project_code_is_synced_and_installed_on_every_node() -> None:
    config = load()
    remote = [dst for dst, src in config["file_mounts"].items() if src == "."]
    assert len(remote) == 1, "the repo root must be synced to exactly one remote path"
    assert any(f"-e {remote[0]}" in cmd for cmd in config["setup_commands"])
    # rsync honours .gitignore: the venv, runs and data shards must not be shipped.
    assert config["rsync_filter"] == [".gitignore"]
    ignored = {line.strip() for line in (REPO / ".gitignore").read_text().splitlines()}
    assert {".venv/", "runs/", "wandb/"} <= ignored


# --- no secrets in the file ----------------------------------------------------------------------------

# Env-style names (WANDB_API_KEY, AWS_SECRET_ACCESS_KEY, ...) and the AWS config-file keys.
CREDENTIAL_NAME = (
    r"(?:\b[A-Z0-9_]*(?:API_KEY|SECRET|TOKEN|PASSWORD)[A-Z0-9_]*"
    r"|(?i:\baws_(?:secret_access_key|access_key_id|session_token)))"
)
SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    # NAME=value, NAME: value, "NAME": "value" with a literal value (a $VAR reference is fine).
    "assigned secret": re.compile(CREDENTIAL_NAME + r"[\"']?\s*[:=]\s*[\"']?(?![$\s{])[^\s\"',}]{6,}"),
    "W&B key": re.compile(r"\b[0-9a-f]{40}\b"),
    "wandb login with key": re.compile(r"(?i)wandb\s+login\s+(?!\$)\S{20,}"),
}


def find_secrets(text: str) -> list[str]:
    return [f"{name}: {m.group(0)!r}" for name, rx in SECRET_PATTERNS.items() for m in rx.finditer(text)]


def test_cluster_yaml_holds_no_secrets() -> None:
    assert find_secrets(CLUSTER_YAML.read_text()) == []


@pytest.mark.parametrize(
    "leak",
    [
        "  - export WANDB_API_KEY=0123456789abcdef0123456789abcdef01234567",
        "  - echo 'WANDB_API_KEY=local-abcdefghijklmnop' >> ~/.bashrc",
        '    env: {"WANDB_API_KEY": "abcdefgh12345678"}',
        "    aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "  - AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE aws s3 ls",
        "  - wandb login 0123456789abcdef0123456789abcdef0123",
    ],
)
def test_secret_scan_catches_a_planted_secret(leak: str) -> None:
    assert find_secrets(CLUSTER_YAML.read_text() + "\n" + leak + "\n")


@pytest.mark.parametrize(
    "harmless",
    [
        "# WANDB_API_KEY travels with each job at submit time",
        '  - echo "key is ${WANDB_API_KEY:+set}"',
        '  --runtime-env-json \'{"env_vars": {"WANDB_API_KEY": "$WANDB_API_KEY"}}\'',
    ],
)
def test_secret_scan_lets_references_through(harmless: str) -> None:
    assert find_secrets(harmless) == []


# --- a broken config fails -----------------------------------------------------------------------------


def _broken(edit: Any) -> dict[str, Any]:
    config = load()
    edit(config)
    return config


@pytest.mark.parametrize(
    ("edit", "error", "message"),
    [
        pytest.param(
            lambda c: c.update(max_worker=4),
            jsonschema.ValidationError,
            "Additional properties are not allowed",
            id="unknown-top-level-key",
        ),
        pytest.param(
            lambda c: c.update(max_workers="four"),
            jsonschema.ValidationError,
            "is not of type 'integer'",
            id="max-workers-wrong-type",
        ),
        pytest.param(
            lambda c: c["available_node_types"]["gpu.worker"]["resources"].update(GPU=0.5),
            jsonschema.ValidationError,
            "is not of type 'integer'",
            id="fractional-gpu-resource",
        ),
        pytest.param(
            lambda c: c["available_node_types"]["gpu.worker"].update(min_worker=0),
            jsonschema.ValidationError,
            "Additional properties are not allowed",
            id="unknown-node-type-key",
        ),
        pytest.param(
            lambda c: c["available_node_types"]["gpu.worker"].pop("node_config"),
            jsonschema.ValidationError,
            "'node_config' is a required property",
            id="node-config-missing",
        ),
        pytest.param(
            lambda c: c.update(head_node_type="ray.head.default"),
            ValueError,
            "`head_node_type` must be one of `available_node_types`",
            id="head-type-not-defined",
        ),
        pytest.param(
            lambda c: c["available_node_types"]["gpu.worker"].update(min_workers=c["max_workers"] + 1),
            ValueError,
            "smaller than the sum of `min_workers`",
            id="min-workers-above-max",
        ),
    ],
)
def test_broken_config_is_rejected(edit: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        ray_up_checks(_broken(edit))
