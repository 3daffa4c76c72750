"""Learned steering policies: the environment that plays on the server, PPO training,
exact evaluation and the policy report (``autosteer-train ppo`` / ``rl-report``)."""
