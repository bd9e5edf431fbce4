"""Export: merge adapters into their base model and save checkpoints that transformers and vLLM load."""
