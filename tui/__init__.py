"""PairForge's terminal app: a Textual front end over the engine."""
