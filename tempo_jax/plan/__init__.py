"""The TPU dry-run planner and the multi-process selfcheck: application code built from the trainer's own builders."""
