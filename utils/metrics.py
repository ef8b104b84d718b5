"""Loss conversions and scoring a whole split."""
import math

import torch


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
