"""Attention benchmark: SDPA's cuDNN kernels against its memory-efficient kernels when every batch has its own width.

Why qaframe turns cuDNN attention off on a GPU (`--no-cudnn-attention`, the default): PyTorch
prefers cuDNN's attention on Hopper and newer, and cuDNN builds an execution plan for each new
input shape. The Trainer peer pads every batch to max_seq_length, so it meets one shape;
qaframe pads each batch to its own width, so it meets dozens. This times a forward and backward
of BERT-base attention (batch 32, 12 heads of 64, bf16, a padding mask) once for each of
`--widths` distinct widths (the first pass: plans are built), then again (the second pass:
plans are cached), with only cuDNN allowed and with only memory-efficient attention allowed.

`python benchmarks/attention.py [--widths 24]`; needs a CUDA GPU (prints a note and exits 0 without one).
"""

from __future__ import annotations

import argparse
import time

from common import emit

from qaframe.errors import one_line

BATCH, HEADS, HEAD_DIM = 32, 12, 64


def passes(backend, widths: list[int]) -> tuple[float, float]:
    """Seconds for one forward+backward at each width, first pass and second pass, with only `backend` allowed."""
    import torch
    from torch.nn.attention import sdpa_kernel

    def one_pass() -> float:
        torch.cuda.synchronize()
        began = time.perf_counter()
        for width in widths:
            q, k, v = (torch.randn(BATCH, HEADS, width, HEAD_DIM, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                       for _ in range(3))
            lengths = torch.randint(width - 7, width + 1, (BATCH,), device="cuda")
            # the boolean (batch, 1, width, width) mask transformers gives SDPA for padded batches
            mask = (torch.arange(width, device="cuda")[None, :] < lengths[:, None])[:, None, None, :].expand(-1, 1, width, -1)
            with sdpa_kernel([backend]):
                out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.1)
                out.sum().backward()
        torch.cuda.synchronize()
        return time.perf_counter() - began

    return one_pass(), one_pass()


def main(argv=None) -> None:
    """Time both backends over the same widths and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, default=24, help="distinct batch widths (multiples of 8 up to 296)")
    args = parser.parse_args(argv)
    import torch
    from torch.nn.attention import SDPBackend

    if not torch.cuda.is_available():
        print("attention.py: no CUDA GPU here; nothing to measure")
        return
    widths = [296 - 8 * i for i in range(args.widths)]
    efficient_first, efficient_second = passes(SDPBackend.EFFICIENT_ATTENTION, widths)
    try:
        cudnn_first, cudnn_second = passes(SDPBackend.CUDNN_ATTENTION, widths)
    except RuntimeError as error:  # this GPU, dtype or mask is not one cuDNN's attention serves
        print(f"attention.py: cuDNN attention not available here: {one_line(error)[:300]}")
        return
    emit({
        "stage": "attention",
        "widths": len(widths),
        "cudnn_first_pass_s": round(cudnn_first, 3),
        "cudnn_second_pass_s": round(cudnn_second, 3),
        "efficient_first_pass_s": round(efficient_first, 3),
        "efficient_second_pass_s": round(efficient_second, 3),
        "first_pass_ratio": round(cudnn_first / efficient_first, 1),
        "batch": BATCH, "heads": HEADS, "head_dim": HEAD_DIM, "dtype": "bfloat16", "dropout": 0.1,
        "cudnn_version": torch.backends.cudnn.version(),
    })


if __name__ == "__main__":
    main()
