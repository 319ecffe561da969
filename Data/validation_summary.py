"""Prints a run's first and last validation against their baselines, with standard errors.

Usage: validation_summary.py RUN/metrics.jsonl
"""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if '"val_loss"' in line]
for row in [rows[0], rows[-1]] if len(rows) > 1 else rows:
    if "val_target_entropy" not in row:
        print(f"  validation  step {row['step']}: loss {row['val_loss']:.3f}, accuracy {row['val_masked_acc']:.3f}")
        continue
    print(f"  validation  step {row['step']:>5}: loss {row['val_loss']:.3f} ± {row['val_loss_se']:.3f} vs target entropy "
          f"{row['val_target_entropy']:.3f} ± {row['val_target_entropy_se']:.3f} (information gain {row['val_info_gain']:+.3f} ± "
          f"{row['val_info_gain_se']:.3f}); accuracy {row['val_masked_acc']:.3f} ± {row['val_masked_acc_se']:.3f} vs prior "
          f"{row['val_prior_acc']:.3f} ± {row['val_prior_acc_se']:.3f}; non-majority accuracy {row['val_nonsilent_acc']:.3f}; "
          f"{row['val_masked_tokens']} masked tokens, {'augmented' if row['val_augmented'] else 'clean'}")
