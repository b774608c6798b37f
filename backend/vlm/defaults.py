"""Which local model describes images when VLM_MODEL is not set: one that fits the machine.

LLaVA-1.5-7B is the model the VLMine paper used, and the default on a machine with a CUDA
GPU (about 14 GB of weights in bfloat16). On a machine without one it would run in
float32 on the CPU, about 28 GB of weights in memory: an ordinary laptop or CPU server
cannot hold it. There the default is SmolVLM-256M-Instruct, an Idefics3 model that
transformers loads natively (no remote code) and whose image processor runs on Pillow
alone: about 0.5 GB of weights in bfloat16, 1 GB in float32.

On the CPU the default describes each image as one 512-pixel view (CPU_DEFAULT_PROCESSOR).
The choice is made once per process and logged once. CUDA is looked for with
``torch.cuda.device_count()``, which asks NVML and so leaves CUDA uninitialised: RQ forks
job processes, and a child forked after the parent initialised CUDA cannot use it.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)

#: the default describer with a CUDA GPU (and with VLM_DEVICE naming an accelerator)
GPU_DEFAULT_MODEL = "llava-hf/llava-1.5-7b-hf"
#: the default describer on a machine without CUDA (and with VLM_DEVICE=cpu)
CPU_DEFAULT_MODEL = "HuggingFaceTB/SmolVLM-256M-Instruct"
#: how the CPU default's processor is loaded: one 512-pixel view of each image (64 image tokens)
#: instead of the checkpoint's tiles of an image enlarged to 2048 pixels plus a global view
#: (a 4:3 photo: 13 views, 832 image tokens); about a tenth of the arithmetic, measured four to
#: eight times faster per image on a 2-core machine (docs/benchmarks.md, bench/describe_cpu.py)
CPU_DEFAULT_PROCESSOR = {"do_image_splitting": False}


@functools.lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """How many CUDA devices torch sees (0 without torch, without a CUDA build or GPU)."""
    try:
        import torch
    except ImportError:
        return 0
    try:
        return int(torch.cuda.device_count())
    except Exception as exc:  # a broken driver counts as none: the CPU default runs anywhere
        log.warning("cannot count CUDA devices (%s: %s); choosing the CPU default describer",
                    type(exc).__name__, exc)
        return 0


def default_model(device: str | None) -> str:
    """The model to describe images with when VLM_MODEL is unset, for VLM_DEVICE ``device``
    (None: the device found here). Logged the first time each answer is given."""
    if device:
        on_cpu = device.strip().lower() == "cpu"
        why = f"VLM_DEVICE={device}"
    else:
        count = cuda_device_count()
        on_cpu = count == 0
        why = "no CUDA device found" if on_cpu else f"{count} CUDA device(s) found"
    model = CPU_DEFAULT_MODEL if on_cpu else GPU_DEFAULT_MODEL
    _say_once(model, why)
    return model


@functools.lru_cache(maxsize=None)
def _say_once(model: str, why: str) -> None:
    if model == CPU_DEFAULT_MODEL:
        log.info("VLM_MODEL is not set and %s: images are described by %s on the CPU (about 1 GB of weights "
                 "in float32, one 512-pixel view per image); %s is the default with a CUDA GPU. Set VLM_MODEL to "
                 "choose another model.", why, CPU_DEFAULT_MODEL, GPU_DEFAULT_MODEL)
    else:
        log.info("VLM_MODEL is not set and %s: images are described by %s. Set VLM_MODEL to choose another "
                 "model.", why, model)
