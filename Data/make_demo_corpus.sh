#!/usr/bin/env bash
# Makes the deterministic demo corpus in Data/generated. (Filled in by the audio issue.)
echo "the demo corpus is not implemented yet" >&2
exit 1
