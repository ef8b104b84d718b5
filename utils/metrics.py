"""Loss conversions and scoring a whole split (window models, and recurrent models with carried state)."""
import math

import torch

from utils.batching import stream_batches


def perplexity(loss):
    """exp of the mean cross-entropy in nats."""
    return math.exp(loss)


def bits_per_token(loss):
    """Mean cross-entropy in bits: nats / ln 2 (bits per character for a character model)."""
    return loss / math.log(2)


@torch.no_grad()
def mean_loss(model, batches):
    """Mean cross-entropy (nats) of a window or attention model over every batch given, weighted
    by the number of targets: with `batches` covering the split, that is the whole split's loss."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in batches:
        _, loss = model(x, y)
        total += loss.item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / count


@torch.no_grad()
def evaluate_recurrent(model, data, batch_size, bptt, device):
    """Mean cross-entropy (nats) of a recurrent model over the token ids `data`, read as
    `batch_size` contiguous streams chunk after chunk with the hidden state carried across chunks,
    as in training (each stream starts from the model's initial state). Every token is scored
    once, except the last len % batch_size that do not fill a stream.
    The model follows the recurrent interface: model(x, state, y) -> (logits, loss, state)."""
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    for x, y in stream_batches(data, batch_size, bptt):
        _, loss, state = model(x.to(device), state, y.to(device))
        total += loss.item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / count
