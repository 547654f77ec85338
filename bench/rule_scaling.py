"""(e) Decision latency as the policy grows with rules for *other* actions, and what compiling it costs.

Each generated policy is the (a1) rule plus N rules for actions like `svc123.op4` (exact) or
`svc123.*` (glob), each with its own CEL condition; the request still matches only the (a1) rule.
Compile time is `load_policy` on the YAML text: parse, validate, compile every CEL condition, index.
"""

from __future__ import annotations

import time

from bench.common import POLICY_YAML, require
from bench.interlock_paths import decision_subject
from bench.measure import Subject
from interlock.core.policy import Policy, load_policy

SIZES = (10, 1_000, 10_000)
_CONDITIONS = (
    "params.amount <= {i} && principal.kind == 'agent'",
    "resource.startsWith('env:{i}/') || channel == 'console'",
    "'{i}' in principal.attributes.teams",
    "context.ip != '10.0.{j}.1' && size(delegators) < 3",
)


def other_rules_yaml(n: int) -> str:
    """n rules for other actions: three exact names to every glob, each with a CEL condition."""
    lines = []
    for i in range(n):
        service, op = i // 8, i % 8
        action = f"svc{service}.*" if op == 7 else f"svc{service}.op{op}"
        condition = _CONDITIONS[i % len(_CONDITIONS)].format(i=i, j=i % 256)
        effect = ("allow", "deny", "allow", "allow")[i % 4]
        lines += [f"  - id: other-{i}", f'    action: "{action}"', f'    when: "{condition}"', f"    effect: {effect}"]
    return "\n".join(lines) + "\n"


def compiled_policy(n: int) -> tuple[Policy, float]:
    """The (a1) policy plus n other rules, and the seconds `load_policy` took."""
    text = POLICY_YAML + other_rules_yaml(n)
    start = time.perf_counter()
    policy = load_policy(text)
    seconds = time.perf_counter() - start
    require(len(policy.rules) == n + 1, f"e.{n}: compiled {len(policy.rules)} rules, expected {n + 1}")
    return policy, seconds


def scaling_subjects() -> tuple[list[Subject], dict[int, float]]:
    """One decision subject per size, and the compile time of each policy."""
    subjects, compile_seconds = [], {}
    for n in SIZES:
        policy, compile_seconds[n] = compiled_policy(n)
        subjects.append(decision_subject(f"e.{n}", f"decide, 1 rule + {n:,} for other actions", policy))
    return subjects, compile_seconds
