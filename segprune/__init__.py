"""segprune: spectral compression of semantic-segmentation networks.

The public API, stage by stage (data -> models -> spectral -> compress -> train -> export
-> bench -> regress, composed by deploy); subpackages import lazily so ``import segprune`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

from segprune.errors import CheckpointError, ConfigError, DataError, SegpruneError  # noqa: E402

__all__ = [
    "CheckpointError",
    "CompressConfig",
    "CompressionPlan",
    "ConfigError",
    "ConfusionMatrix",
    "DataError",
    "DeployConfig",
    "FinetuneConfig",
    "SegMetrics",
    "SegpruneError",
    "TrainConfig",
    "__version__",
    "build_dataset",
    "compress_",
    "compress_for_deployment",
    "create_model",
    "evaluate",
    "finetune",
    "fit",
    "list_models",
    "load_checkpoint",
    "load_model",
    "register_adapter",
    "save_checkpoint",
]

_LAZY = {
    "ConfusionMatrix": "segprune.metrics",
    "SegMetrics": "segprune.metrics",
    "build_dataset": "segprune.data",
    "CompressConfig": "segprune.compress",
    "compress_": "segprune.compress",
    "CompressionPlan": "segprune.deploy",
    "DeployConfig": "segprune.deploy",
    "compress_for_deployment": "segprune.deploy",
    "FinetuneConfig": "segprune.train",
    "finetune": "segprune.train",
    "load_model": "segprune.models",
    "register_adapter": "segprune.models",
    "create_model": "segprune.models",
    "list_models": "segprune.models",
    "load_checkpoint": "segprune.models",
    "save_checkpoint": "segprune.models",
    "TrainConfig": "segprune.train",
    "evaluate": "segprune.train",
    "fit": "segprune.train",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'segprune' has no attribute {name!r}")
