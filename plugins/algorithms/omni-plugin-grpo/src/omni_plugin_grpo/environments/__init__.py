"""Built-in RL environments for multi-turn rollouts (`--environment NAME`)."""
