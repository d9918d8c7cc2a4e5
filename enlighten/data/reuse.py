"""Load a dataset once per process: the next job of a multirun with the same dataset config gets it
back already on the device (Hydra's basic and local launchers run many jobs in one process).

Datasets are never modified after loading (batches are fresh tensors), so sharing one between
consecutive runs cannot change a result; a test checks that it does not.
"""

from __future__ import annotations

import json

import torch
from omegaconf import DictConfig, OmegaConf

from enlighten.config import build

# At most one dataset is held: a sweep over dataset sizes must not pile them up in memory.
_last: dict = {}


def load_dataset(dataset_cfg: DictConfig, device: torch.device, reuse: bool = True):
    """`instantiate(dataset_cfg).to(device)`, or the dataset the previous run of this process loaded
    from an identical config onto the same device."""
    key = json.dumps(OmegaConf.to_container(dataset_cfg, resolve=True), sort_keys=True) + f"@{device}"
    if reuse and key in _last:
        return _last[key]
    _last.clear()  # free the previous dataset before loading the next
    data = build(dataset_cfg).to(device)
    if reuse:
        _last[key] = data
    return data
