"""Option values shared by the library and the CLI, importable without torch.

``segprune --help`` and every ``segprune COMMAND --help`` build their parsers from these
names without importing torch (a test proves it), so they live apart from the modules that
implement them.
"""

from __future__ import annotations

IMPORTANCES = ("spectral", "spectral-l1", "l1", "l2", "bn", "taylor")
"""Channel rankings by name (see :mod:`segprune.compress.importance`)."""

SCOPES = ("decoder", "head", "all")
"""Pruning scopes: the decoder's fusion, + the context module (ASPP), + the encoder (:mod:`segprune.compress.scope`)."""

ARCH_HELP = ("for a plain weights file: smp:CLASS (e.g. smp:Unet, with --encoder and --classes), tv:NAME "
             "(torchvision's, e.g. tv:deeplabv3_resnet50, with --classes) or a segprune model name such as "
             "deeplabv3plus_resnet18 (with --classes)")
"""How a weights file names its architecture (``--arch``; :func:`segprune.models.load_model`)."""
