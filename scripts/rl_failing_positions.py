"""Which single (feature, strength) actions keep the solved value on the positions with at most
two pieces where a learned policy fails, in `grid` and `rows` (one model call per action).

    python scripts/rl_failing_positions.py bots/llm/artifacts/learned_policy.json
"""
import json, sys, torch, numpy as np
torch.set_num_threads(1)
from bots.llm.model import load_model
from bots.llm.cli import load_sae_arg
from bots.llm.learned import LearnedSteeringPolicy
from training.rl.ppo import TrainConfig, build_actuators, warm_actuators, policy_moves
from training.heldout import open_positions
from server.solver import value_preserving_cells
lm = load_model("smollm2"); sae = load_sae_arg("auto", lm)
pol = LearnedSteeringPolicy.from_dict(json.load(open(sys.argv[1])), "p")
cfg = TrainConfig()
boards = [b for b in open_positions() if len(b.legal_cells()) >= 7]
acts = build_actuators(lm, sae, cfg, pol.features, phrasings=["grid", "rows"])
warm_actuators(acts, lm, lm.weights_hash(), threads=1, progress=False, store=False, boards=boards)
res = {}
for ph, act in acts.items():
    moves = policy_moves(pol, act, boards)
    res[ph] = [m.legal and m.cell in value_preserving_cells(b) for b, m in zip(boards, moves)]
n_act = act.codec.nvec[0]
single = np.array([[a, 0] for a in range(n_act)])
tot = {"fail_any": 0, "fixable_each": 0, "fixable_same": 0}
for i, b in enumerate(boards):
    if res["grid"][i] and res["rows"][i]:
        continue
    tot["fail_any"] += 1
    ok = {}
    for ph, act in acts.items():
        ms = act.act([b] * n_act, single)
        ok[ph] = np.array([m.legal and m.cell in value_preserving_cells(b) for m in ms])
    fix_g = ok["grid"].any(); fix_r = ok["rows"].any(); same = (ok["grid"] & ok["rows"]).any()
    tot["fixable_each"] += bool(fix_g and fix_r); tot["fixable_same"] += bool(same)
    print(b.code, b.turn.value, "grid ok" if res["grid"][i] else "grid FAIL", "rows ok" if res["rows"][i] else "rows FAIL",
          "working single actions grid", int(ok["grid"].sum()), "rows", int(ok["rows"].sum()), "both", int((ok["grid"] & ok["rows"]).sum()), flush=True)
print(len(boards), "early boards;", tot)
