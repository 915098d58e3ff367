"""A minimal hand-written PyTorch loop: the yardstick the harness's training loop is measured against.

Same models, data, batch size and per-epoch validation pass as the harness, written the way a user
would write it without the harness; ``precision`` bf16 or fp16 is PyTorch's AMP recipe (autocast
around the forward pass and the loss, a GradScaler for fp16).
"""

from __future__ import annotations

import contextlib
import time

import torch
from torch import nn
from torch.nn import functional as F


def mlp_baseline() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 1000), nn.ReLU(), nn.Linear(1000, 1000), nn.ReLU(),
                         nn.Linear(1000, 10))


def cnn_baseline() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 32, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 128, 4, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(2048, 10),
    )


MODELS = {"mlp_baseline": mlp_baseline, "cnn_baseline": cnn_baseline}


AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def run_epoch(model_name: str, splits, batch_size: int = 50, device: str = "cpu", precision: str = "fp32") -> float:
    """Seconds for one epoch of training plus a validation pass (as Keras' fit with validation data)."""
    kind = torch.device(device).type
    # fp32 runs the loop exactly as before precisions existed: no autocast, no scaler calls per step.
    mixed = (lambda: torch.autocast(kind, dtype=AUTOCAST[precision])) if precision in AUTOCAST else contextlib.nullcontext
    scaler = torch.amp.GradScaler(kind) if precision == "fp16" else None
    torch.manual_seed(0)
    model = MODELS[model_name]().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(splits.x_train).permute(0, 3, 1, 2).contiguous().to(device)
    y = torch.from_numpy(splits.y_train).to(device)
    x_val = torch.from_numpy(splits.x_val).permute(0, 3, 1, 2).contiguous().to(device)
    y_val = torch.from_numpy(splits.y_val).to(device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()  # the copies above are not the epoch's
    started = time.perf_counter()
    model.train()
    order = torch.randperm(len(y), device=device)
    for start in range(0, len(y), batch_size):
        index = order[start : start + batch_size]
        with mixed():
            loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    model.eval()
    with torch.inference_mode(), mixed():
        sum(int((model(x_val[i : i + 1000]).argmax(1) == y_val[i : i + 1000]).sum())
                      for i in range(0, len(y_val), 1000))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started
