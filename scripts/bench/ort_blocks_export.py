"""Exports CLIP ViT-B/16's vision blocks as a plain ONNX graph (matmul,
softmax, QuickGELU as x*sigmoid(1.702x)), random weights, for the ONNX Runtime
comparison in docs/performance.md. Comparison only: clipes does not use ONNX.

usage: /usr/bin/python3 ort_blocks_export.py OUT.onnx [TOKENS] [BLOCKS]
"""
import sys
import torch

out = sys.argv[1]
tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 1201
blocks = int(sys.argv[3]) if len(sys.argv) > 3 else 12
D, H = 768, 12


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(D)
        self.ln_2 = torch.nn.LayerNorm(D)
        self.in_proj = torch.nn.Linear(D, 3 * D)
        self.out_proj = torch.nn.Linear(D, D)
        self.c_fc = torch.nn.Linear(D, 4 * D)
        self.c_proj = torch.nn.Linear(4 * D, D)

    def forward(self, x):  # x: [L, D]
        L = x.shape[0]
        qkv = self.in_proj(self.ln_1(x)).reshape(L, 3, H, D // H).permute(1, 2, 0, 3)
        q, k, v = qkv[0] * (D // H) ** -0.5, qkv[1], qkv[2]
        p = torch.softmax(q @ k.transpose(1, 2), dim=-1)
        x = x + self.out_proj((p @ v).permute(1, 0, 2).reshape(L, D))
        h = self.c_fc(self.ln_2(x))
        return x + self.c_proj(h * torch.sigmoid(1.702 * h))


torch.manual_seed(0)
model = torch.nn.Sequential(*[Block() for _ in range(blocks)]).eval()
torch.onnx.export(model, torch.randn(tokens, D), out, opset_version=14, input_names=["x"], output_names=["y"])
print(f"wrote {out}: {blocks} blocks, {tokens} tokens")
