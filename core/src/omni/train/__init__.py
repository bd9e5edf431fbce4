"""Training: tuners, collators, algorithms (sft, pt) on the transformers Trainer."""
