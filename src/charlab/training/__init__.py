"""training: the loop and what runs around it.

- ``loop.py``: ``Trainer``, the loop itself: advance, record losses, evaluate, keep the best weights;
- ``steps.py``: how a step is taken (autograd, hand-derived, compiled chunks, count fit), chosen once
  (``--fast-path auto`` picks the fastest that applies);
- ``hand_backward.py``: the window models' hand-derived backward pass and SGD steps (the fast paths' math);
- ``compiled.py``: compiling those SGD steps (on-disk cache, background ``compile_worker.py``, fallback);
- ``graph_call.py``: the inductor backend that keeps the compiled graph, and calling it without
  ``torch.compile``'s per-call guards;
- ``optim.py``: the optimizers (plain SGD in one foreach kernel, AdamW);
- ``lr_schedule.py``: the learning rate of each step;
- ``events.py``: the ``Observer`` events and the read-only ``TrainView`` observers get;
- ``state.py``: capture and restore the whole training state (RNG streams included);
- ``checkpoint.py``: checkpoints on disk (encode/decode, ``Checkpointer``), resume helpers;
- ``nonfinite.py``: the non-finite guard; ``signals.py``: graceful SIGINT/SIGTERM; ``stopping.py``: why;
- ``safe_fit.py``: ``fit_safely``, the fit of a real run with guard, checkpoints and signals;
- ``progress.py``: progress on the terminal or in a log;
- ``devices.py``, ``distributed.py``: where tensors live, data-parallel training.
"""
