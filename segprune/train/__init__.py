"""Training, fine-tuning and evaluation loops."""

from segprune.train.config import TrainConfig
from segprune.train.distill import DistillationKL, FeatureDistillation, TeacherWrapper
from segprune.train.distributed import DistContext, init_distributed
from segprune.train.evaluate import evaluate, predict_logits
from segprune.train.finetune import (
    FinetuneConfig,
    compress_and_finetune,
    finetune,
    plan_prune_steps,
    score_stage,
)
from segprune.train.losses import CrossEntropy, RecallCrossEntropy
from segprune.train.multi_exit import ClassLayer, MultiExitWrapper, PresenceHead, SRLoss
from segprune.train.objective import TERMS, Objective, build_training_module
from segprune.train.schedule import build_optimizer, build_scheduler, poly_warmup
from segprune.train.state import load_train_state, save_train_state
from segprune.train.trainer import fit, seed_everything

__all__ = [
    "TERMS",
    "ClassLayer",
    "CrossEntropy",
    "DistContext",
    "DistillationKL",
    "FeatureDistillation",
    "FinetuneConfig",
    "MultiExitWrapper",
    "Objective",
    "PresenceHead",
    "RecallCrossEntropy",
    "SRLoss",
    "TeacherWrapper",
    "TrainConfig",
    "build_optimizer",
    "build_scheduler",
    "build_training_module",
    "compress_and_finetune",
    "evaluate",
    "finetune",
    "fit",
    "init_distributed",
    "load_train_state",
    "plan_prune_steps",
    "poly_warmup",
    "predict_logits",
    "save_train_state",
    "score_stage",
    "seed_everything",
]
