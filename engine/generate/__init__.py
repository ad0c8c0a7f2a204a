"""Generation: backends, prompt packs, planner and queue."""
