"""The steered LLM player: model loading (offline), prompts, SAE loading, steering hooks,
move reading and traces. Importing this package does not import torch; its modules do."""
