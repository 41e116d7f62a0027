"""charlab from Python, as in a notebook: train, record diagnostics, draw the lecture's figures,
judge the run, sample from it and write the HTML report.

    python examples/notebook_api.py --steps 2000 --out runs/notebook

In Jupyter, run the ``# %%`` cells one by one: the plot functions return matplotlib Figures, and a
Figure as the last expression of a cell displays itself.
"""

# %% setup
import argparse
import json
from pathlib import Path

import charlab
from charlab.diagnostics import plots
from charlab.diagnostics.health import check
from charlab.diagnostics.sampling import SampleSchedule
from charlab.diagnostics.recorder import Recorder
from charlab.report.page import write_report
from charlab.inference.sample import sample_texts

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=2000, help="training steps (the lecture trains 200,000)")
parser.add_argument("--out", default="runs/notebook", help="run directory to create")
args = parser.parse_args()
out = Path(args.out)

# %% train the lecture's MLP with BatchNorm, recording statistics every 100 steps
recorder = Recorder(schedule=SampleSchedule(every=100), out=out)  # also saved: RUN/diagnostics.jsonl
run = charlab.train(preset="mlp-bn", steps=args.steps, out=out, observers=[recorder], overwrite=True)
print("losses:", {k: round(v, 4) for k, v in run.losses.items()})
print("samples:", [s["text"] for s in run.samples[:5]])

# %% the lecture's figures, straight from the recorded values
figures = {
    "activations": plots.plot_activations(recorder.records),
    "gradients": plots.plot_gradients(recorder.records),
    "update_ratio": plots.plot_update_ratio(recorder.records),
}
for name, fig in figures.items():
    fig.savefig(out / f"{name}.png")

# %% verdicts: each names the layer, the value, the threshold, a likely cause and a fix
verdicts = check(recorder.records)
for v in verdicts:
    print(f"{v.status:4s}  {v.rule:24s} {v.layer or '-':12s} {v.cause or ''}")

# %% a saved run needs nothing but its folder: load it back and sample at a lower temperature
loaded = charlab.load_run(out)
cooler = sample_texts(loaded.model, loaded.vocab, loaded.splits, 5, seed=7, temperature=0.7)
print("temperature 0.7:", [s["text"] for s in cooler])

# %% one self-contained page with all of it
report = write_report(out)
print(json.dumps({"run": str(out), "losses": run.losses, "figures": sorted(figures),
                  "verdicts": len(verdicts), "report": str(report)}))
