"""Distillation: batched Sinkhorn OT, the OT alignment and MSE distillation losses, the trainer."""
