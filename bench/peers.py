"""(c) Peers deciding the equivalent rule, decide-only, each in its fastest documented form.

Each peer is checked to allow the request and deny every changed one before it is timed.
cedarpy gets a pre-parsed PolicySet and Entities; casbin an ABAC model with `eval()` in the matcher;
agent-governance-toolkit-core's evaluators cannot compare two request fields, so the known-recipient
list is written into their rules (that makes their job easier, not harder).
"""

from __future__ import annotations

import warnings
from typing import Any

from bench.common import KNOWN_RECIPIENTS, REQUEST, changed_requests, require
from bench.measure import Subject

CEDAR_POLICY = (
    'permit(principal, action == Action::"payments.transfer", resource)\n'
    "when { context.amount <= 1000 && context.known.contains(context.recipient) };"
)
CASBIN_MODEL = """
[request_definition]
r = sub, act, obj
[policy_definition]
p = sub_rule, act
[policy_effect]
e = some(where (p.eft == allow))
[matchers]
m = r.act == p.act && eval(p.sub_rule)
"""
CASBIN_RULE = "r.sub.amount <= 1000 && r.sub.recipient in r.sub.known"


def _check(key: str, decide: Any, to_input: Any) -> None:
    require(decide(to_input(REQUEST)) is True, f"{key} does not allow the request")
    for name, changed in changed_requests().items():
        require(decide(to_input(changed)) is False, f"{key} does not deny the changed request ({name})")


def cedar_subject() -> Subject:
    import cedarpy

    policies = cedarpy.PolicySet.from_str(CEDAR_POLICY)
    entities = cedarpy.Entities.from_json_str("[]")

    def to_input(req: dict[str, Any]) -> dict[str, Any]:
        return {
            "principal": 'Agent::"finance-assistant"',
            "action": f'Action::"{req["action"]}"',
            "resource": 'Account::"treasury"',
            "context": {"amount": req["params"]["amount"], "recipient": req["params"]["recipient"],
                        "known": req["principal"]["attributes"]["known_recipients"]},
        }

    _check("cedarpy", lambda r: cedarpy.is_authorized(r, policies, entities).allowed, to_input)
    request = to_input(REQUEST)
    return Subject("c.cedarpy", "cedarpy is_authorized (pre-parsed)",
                   lambda: cedarpy.is_authorized(request, policies, entities))


def casbin_subject() -> Subject:
    import casbin
    from casbin.model import Model

    model = Model()
    model.load_model_from_text(CASBIN_MODEL)
    enforcer = casbin.Enforcer(model)
    enforcer.add_policy(CASBIN_RULE, "payments.transfer")

    def to_input(req: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
        sub = {"amount": req["params"]["amount"], "recipient": req["params"]["recipient"],
               "known": req["principal"]["attributes"]["known_recipients"]}
        return sub, req["action"], req["resource"]

    _check("casbin", lambda args: enforcer.enforce(*args), to_input)
    sub, act, obj = to_input(REQUEST)
    return Subject("c.casbin", "casbin enforce (ABAC, eval in matcher)", lambda: enforcer.enforce(sub, act, obj))


def agt_evaluator_subject() -> Subject:
    """agent_os.policies.PolicyEvaluator: one condition per rule, first match by priority, so denies first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from agent_os.policies import PolicyEvaluator
        from agent_os.policies.schema import (
            PolicyAction,
            PolicyCondition,
            PolicyDefaults,
            PolicyDocument,
            PolicyOperator,
            PolicyRule,
        )

    def rule(name: str, field: str, op: PolicyOperator, value: Any, action: PolicyAction, prio: int) -> PolicyRule:
        condition = PolicyCondition(field=field, operator=op, value=value)
        return PolicyRule(name=name, condition=condition, action=action, priority=prio)

    document = PolicyDocument(name="payments", defaults=PolicyDefaults(action=PolicyAction.DENY), rules=[
        rule("other-action", "action", PolicyOperator.NE, "payments.transfer", PolicyAction.DENY, 30),
        rule("too-large", "amount", PolicyOperator.GT, 1000, PolicyAction.DENY, 20),
        rule("unknown-recipient", "recipient", PolicyOperator.NOT_IN, KNOWN_RECIPIENTS, PolicyAction.DENY, 10),
        rule("small-known-transfers", "action", PolicyOperator.EQ, "payments.transfer", PolicyAction.ALLOW, 0),
    ])
    evaluator = PolicyEvaluator([document])

    def to_input(req: dict[str, Any]) -> dict[str, Any]:
        return {"action": req["action"], "amount": req["params"]["amount"], "recipient": req["params"]["recipient"]}

    _check("agt PolicyEvaluator", lambda ctx: evaluator.evaluate(ctx).allowed, to_input)
    context = to_input(REQUEST)
    return Subject("c.agt", "agt-core agent_os PolicyEvaluator", lambda: evaluator.evaluate(context))


def agt_mesh_subject() -> Subject:
    """agentmesh.governance.PolicyEngine: one expression rule (`and`, `<=`, `in [...]`), default deny."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from agentmesh.governance.policy import Policy, PolicyEngine, PolicyRule

    known = ", ".join(f"'{r}'" for r in KNOWN_RECIPIENTS)
    condition = (f"action.type == 'payments.transfer' and params.amount <= 1000"
                 f" and params.recipient in [{known}]")
    engine = PolicyEngine()
    engine.load_policy(Policy(name="payments", agents=["*"], default_action="deny", rules=[
        PolicyRule(name="small-known-transfers", condition=condition, action="allow"),
    ]))
    agent = "did:agent:finance-assistant"

    def to_input(req: dict[str, Any]) -> dict[str, Any]:
        return {"action": {"type": req["action"]}, "params": dict(req["params"])}

    _check("agt PolicyEngine", lambda ctx: engine.evaluate(agent, ctx).allowed, to_input)
    context = to_input(REQUEST)
    return Subject("c.agt-mesh", "agt-core agentmesh PolicyEngine", lambda: engine.evaluate(agent, context))


def peer_subjects() -> list[Subject]:
    return [cedar_subject(), casbin_subject(), agt_evaluator_subject(), agt_mesh_subject()]
