"""TensorBoard's own event reader accepts nest-train's event files.

Usage: check_tensorboard.py RUN_FOLDER
Loads the run with tensorboard's EventAccumulator and checks that every scalar field of
metrics.jsonl arrives with its steps and values.
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

run = sys.argv[1]
acc = EventAccumulator(run)
acc.Reload()
tags = set(acc.Tags()["scalars"])
rows = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
checked = 0
for row in rows:
    for key, value in row.items():
        if key == "step" or value is None:
            continue
        assert key in tags, f"tag {key} missing (have {sorted(tags)})"
        events = {e.step: e.value for e in acc.Scalars(key)}
        assert abs(events[row["step"]] - float(value)) <= 1e-6 * max(1.0, abs(float(value))), (key, row["step"], events.get(row["step"]), value)
        checked += 1
print(f"tensorboard read {len(tags)} tags; {checked} values of metrics.jsonl match")
