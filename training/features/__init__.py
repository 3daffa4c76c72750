"""The SAE and its features: the chat corpus and activations it is trained on
(``corpus``, ``activations``), training, measuring and shipping it (``sae_training``,
``sae_report``, ``sae``: ``autosteer-train sae``), and labelling its features by board
concepts and steering effect (``labels``, ``label_features``: ``autosteer-train label``)."""
