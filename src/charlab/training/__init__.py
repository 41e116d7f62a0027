"""training: the loop and what runs around it (optimizers, schedules, state, checkpoints, guards, devices, progress)."""
