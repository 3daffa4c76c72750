"""Learned steering policies: the environment that plays on the server (``env``), the
start positions of its games (``curriculum``), the LLM actuator (``actuator``), the PPO method (``ppo``), exact evaluation (``evaluation``),
the ``autosteer-train ppo`` command (``cli``), run cards and summaries over seeds
(``cards``, ``summary``) and the policy report (``policy_report``, ``autosteer-train rl-report``)."""
