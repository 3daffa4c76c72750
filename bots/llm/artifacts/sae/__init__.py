"""The SmolLM2 SAE in sae_lens format, written by ``autosteer-train sae`` (data only)."""
