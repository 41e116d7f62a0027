"""inference: a trained model used: evaluate, sample (with the window cache), fold BatchNorm."""
