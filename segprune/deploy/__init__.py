"""From a trained model to a deployment folder: compression, export, benchmark, baselines and a model card.

The library pipeline composed (``compress_``, ``finetune``, ``export_model``, ``bench``,
``record_baselines``); ``segprune prune`` runs :func:`compress_model`, ``segprune compress``
and the demo run :func:`compress_for_deployment`.
"""

from segprune.deploy.compression import CompressionPlan, compress_model, load_for_compression, stages_table
from segprune.deploy.pipeline import DeployConfig, compress_for_deployment

__all__ = ["CompressionPlan", "DeployConfig", "compress_for_deployment", "compress_model", "load_for_compression",
           "stages_table"]
