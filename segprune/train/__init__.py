"""Training, fine-tuning and evaluation loops."""

from segprune.train.config import TrainConfig
from segprune.train.distributed import DistContext, init_distributed
from segprune.train.evaluate import evaluate, predict_logits
from segprune.train.losses import CrossEntropy
from segprune.train.schedule import build_optimizer, build_scheduler, poly_warmup
from segprune.train.state import load_train_state, save_train_state
from segprune.train.trainer import fit, seed_everything

__all__ = [
    "CrossEntropy",
    "DistContext",
    "TrainConfig",
    "build_optimizer",
    "build_scheduler",
    "evaluate",
    "fit",
    "init_distributed",
    "load_train_state",
    "poly_warmup",
    "predict_logits",
    "save_train_state",
    "seed_everything",
]
