"""Every model file (*/model.py and the modules beside it that it builds from, e.g. transformer/layers.py,
gru/bptt.py: every .py of a model folder but train.py and generate.py) builds its layers from tensor ops:
no high-level torch layers (AST scan)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    # modules
    "Linear", "Bilinear", "LazyLinear", "Embedding", "EmbeddingBag", "RNN", "LSTM", "GRU", "RNNBase",
    "RNNCell", "LSTMCell", "GRUCell", "MultiheadAttention", "Transformer", "TransformerEncoder",
    "TransformerDecoder", "TransformerEncoderLayer", "TransformerDecoderLayer", "LayerNorm", "RMSNorm",
    "GroupNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LazyBatchNorm1d",
    # their fused functional forms
    "linear", "bilinear", "embedding", "embedding_bag", "scaled_dot_product_attention",
    "multi_head_attention_forward", "layer_norm", "rms_norm", "group_norm", "batch_norm",
    "lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "_VF",
}
ROOTS = {"torch", "nn", "F", "functional"}


def dotted(node):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return list(reversed(parts))


def violations(source):
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            parts = dotted(node)
            if parts and parts[0] in ROOTS and parts[-1] in FORBIDDEN and node.attr == parts[-1]:
                found.append(".".join(parts))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch"):
            found += [f"from {node.module} import {a.name}" for a in node.names if a.name in FORBIDDEN]
    return found


MODEL_FILES = sorted(p for folder in ROOT.glob("*/model.py") for p in folder.parent.glob("*.py")
                     if p.name not in ("train.py", "generate.py"))


def test_there_are_model_files_to_scan():
    assert {ROOT / "mlp" / "model.py", ROOT / "transformer" / "layers.py", ROOT / "gru" / "bptt.py"} <= set(MODEL_FILES)


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_model_uses_only_raw_tensor_ops(path):
    assert violations(path.read_text()) == []


def test_the_scan_catches_forbidden_layers():
    bad = ("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
           "from torch.nn import LSTM\n"
           "a = nn.Linear(2, 3)\nb = torch.nn.LayerNorm(3)\nc = F.scaled_dot_product_attention(q, k, v)\n"
           "d = F.cross_entropy(x, y)\ne = torch.tanh(x)\n")
    assert violations(bad) == ["from torch.nn import LSTM", "nn.Linear", "torch.nn.LayerNorm",
                               "F.scaled_dot_product_attention"]
